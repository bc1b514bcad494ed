package states_test

import (
	"strings"
	"testing"

	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Regression (third review): change-package now keeps a removed address reserved until
// DNS no longer points at it, but terminate's releaseResources (and
// reset-status remove) still free every address of the VM — kept and
// `releasing` alike — while its A/PTR records could not be deleted. A new VM
// gets the address at once and publishes its PTR next to the old one.
func TestTerminateKeepsAddressesUntilDNSDeleted(t *testing.T) {
	r := newRig(t, true)
	c1 := r.deployed("t1", "small")
	ips, err := r.st.IPsForVM(r.ctx, c1.ID)
	require.NoError(t, err)
	addr := ips[0].Address

	r.dns.failDeletes = true // the DNS server is unreachable for deletes
	r.request(c1, states.Terminate, "")
	r.until(c1.ID, states.Remove, 40)

	c2 := r.deployed("t2", "small")
	ips2, err := r.st.IPsForVM(r.ctx, c2.ID)
	require.NoError(t, err)

	var stale []string
	for _, rec := range r.dns.records() {
		if strings.Contains(rec, "t1.example.test") {
			stale = append(stale, rec)
		}
	}
	if len(stale) > 0 {
		assert.NotEqual(t, addr, ips2[0].Address, "%s was given to t2 while t1's records still point at it: %v", addr, stale)
	}
}
