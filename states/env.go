package states

import (
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/store"
)

// Env is what a step function works with. The runner gives each VM its own
// copy with Emit bound to that VM's live output and run log.
type Env struct {
	Store  *store.Store
	Config *config.Config
	Now    func() time.Time
	// Emit writes a sub-line (a DNS record, a heartbeat) for the current step,
	// live and into the VM's run log.
	Emit func(detail string)
}
