package states_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (found in review): change-package's first step (updateIPs) calls DeleteDNS
// and ignores the result. SyncDNS then clears the DNS-dirty flag because
// its own publishes succeeded, and the IP is released to the pool anyway.
// Issue 6 says the opposite: "released addresses go back to the pool only
// after DNS and the IP set no longer use them". The old A record and the
// PTR for the released address stay in DNS and are never retried. The next
// VM that gets the address adds a second PTR beside the stale one.
func TestChangePackageReleasesIPOnlyAfterDNSDelete(t *testing.T) {
	r := newRig(t, true)
	c1 := r.create("c1", "two-ips")
	r.until(c1.ID, states.Ready, 40)

	r.dns.failDeletes = true
	_, err := r.st.VMRequest(r.ctx, c1.ID, []string{string(states.Ready)}, string(states.ChangePackage), "small", r.clk.Now())
	require.NoError(t, err)
	r.tick(20 * time.Second) // change_package → cp_update_ip
	r.dns.failDeletes = false
	r.until(c1.ID, states.Ready, 40)
	for range 60 {
		r.tick(time.Minute)
	}

	// A new VM gets the released address.
	c2 := r.create("c2", "small")
	r.until(c2.ID, states.Ready, 40)
	ips, err := r.st.IPsForVM(r.ctx, c2.ID)
	require.NoError(t, err)
	t.Logf("c2 got %v", ips)

	var stale []string
	for _, rec := range r.dns.records() {
		if strings.Contains(rec, "192.0.2.11") && !strings.Contains(rec, "c2.") || strings.HasPrefix(rec, "11.2.0.192.in-addr.arpa PTR c1.") {
			stale = append(stale, rec)
		}
	}
	assert.Empty(t, stale, "records for the address c1 gave up must be gone (all DNS records: %v)", r.dns.records())
}
