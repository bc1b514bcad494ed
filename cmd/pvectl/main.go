// Command pvectl provisions, changes and terminates Proxmox VE virtual
// machines, one resumable step per cron tick. See docs/ for the operator's guide.
package main

import (
	"os"
	_ "time/tzdata" // IANA zone names (--tz, timezone) resolve on hosts without tzdata
)

func main() { os.Exit(run()) }
