package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// createDNSCheckTimeout bounds vm create's look at the DNS servers: the command returns at once.
const createDNSCheckTimeout = 3 * time.Second

// apexProblem is vm create's refusal of a hostname that is the apex of a configured forward
// zone without allow_apex (config only, no query), or "".
func apexProblem(c *config.Config, hostname string) string {
	apex := states.ApexZones(dnsZones(c), c.DNS.ApexAllowed, hostname)
	if len(apex) == 0 {
		return ""
	}
	return fmt.Sprintf("--hostname %s: is the apex of DNS zone %s, where the zone's own records live (SOA, NS, the domain's web and mail); want a name inside the zone, like vm1.%s (or set allow_apex: true on the zone in the config)",
		quoteInput(hostname), apex[0], apex[0])
}

// foreignRecordsProblem is vm create's refusal of a hostname at which a forward zone's server
// already holds records that are not this VM's, or "". A create for a service id that exists
// is not checked: the store returns that VM for a repeat of the same request (its records are
// its own, and a VM held for its name shows why) and refuses any other. When the servers
// cannot be asked it warns on stderr and lets the create go on: the DNS step checks again
// before it publishes anything.
func foreignRecordsProblem(ctx context.Context, stderr io.Writer, c *config.Config, st *store.Store, serviceID, hostname string) (string, error) {
	zones := dnsZones(c)
	if len(dns.MatchForward(zones, hostname)) == 0 {
		return "", nil
	}
	for _, ref := range []string{serviceID, hostname} {
		vm, err := st.VMFind(ctx, ref)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return "", err
		case vm.ServiceID == serviceID:
			return "", nil // a repeat, or a duplicate service id the store refuses
		case vm.Hostname == hostname && vm.Status != string(states.Remove):
			return "", nil // the store refuses the name with its own message
		}
	}
	u := dns.NewUpdater(zones)
	u.Timeout = min(c.DNS.Timeout.D(), 2*time.Second)
	if u.Timeout <= 0 {
		u.Timeout = 2 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, createDNSCheckTimeout)
	defer cancel()
	err := states.CheckHostname(qctx, u, zones, c.DNS.ApexAllowed, hostname, nil)
	var he *states.HostnameError
	switch {
	case err == nil:
		return "", nil
	case errors.As(err, &he) && len(he.Apex) > 0:
		return apexProblem(c, hostname), nil
	case errors.As(err, &he):
		return fmt.Sprintf("--hostname %s: already has DNS records that are not this VM's: %s; want a hostname that holds no records yet (choose another name, or remove those records from the zone if they are stale)",
			quoteInput(hostname), states.DescribeRecords(he.Foreign)), nil
	}
	fmt.Fprintf(stderr, "warning: could not check %s for DNS records that are not this VM's (%v); the DNS step checks again before it publishes anything\n",
		hostname, err)
	return "", nil
}
