package states

import (
	"context"
	"sync"
	"time"

	"github.com/pvectl/pvectl/store"
)

// Claims is one pass's record of the VMIDs and addresses that are taken:
// read from the store once, by the first step of the pass that allocates,
// and kept up to date by the pass's own picks. Its lock makes the workers
// of a pass pick one at a time, each seeing what the others picked, so
// they never collide on the lowest free VMID or address (with a burst of
// thousands of orders they did, and one worker could lose every try), and
// a pick costs a lookup instead of a read of every used VMID and address.
//
// It only ever says too much is taken (a VMID or address freed during the
// pass is picked again from the next pass on). Another process picking the
// same value meanwhile is caught by the store's unique constraints: the
// step then drops the view (Reset) and picks again from a fresh read.
type Claims struct {
	mu sync.Mutex
	t  *taken
}

// NewClaims returns a view that has not been read yet.
func NewClaims() *Claims { return &Claims{} }

// taken is what a pick must avoid.
type taken struct {
	vmids map[int]bool
	ips   map[string]bool
	// quarantined: freed addresses and when they were freed.
	quarantined map[string]time.Time
	// lowVMID: every VMID below it is taken.
	lowVMID int
}

func (t *taken) freeVMID(lo, hi int, inCluster map[int]bool) int {
	for id := max(lo, t.lowVMID); id <= hi; id++ {
		if !t.vmids[id] && !inCluster[id] {
			t.lowVMID = id
			return id
		}
	}
	return 0
}

func readTaken(ctx context.Context, env *Env) (*taken, error) {
	vmids, err := env.Store.UsedVMIDs(ctx)
	if err != nil {
		return nil, err
	}
	ips, err := env.Store.IPsAllocated(ctx)
	if err != nil {
		return nil, err
	}
	// Freed addresses wait out their quarantine: resolvers may still cache
	// the old VM's records for them.
	q, err := env.Store.IPsReleasedSince(ctx, env.Now().Add(-env.Config.AddressQuarantine()))
	if err != nil {
		return nil, err
	}
	return &taken{vmids: vmids, ips: ips, quarantined: q}, nil
}

// pick runs choose on what is taken, one worker at a time, and records the
// VMID (0: none) and addresses it chose as taken. Without a pass's view (a
// nil Claims) it reads what is taken fresh.
func (c *Claims) pick(ctx context.Context, env *Env, choose func(t *taken) (int, []store.IPAllocation, error)) (int, []store.IPAllocation, error) {
	if c == nil {
		t, err := readTaken(ctx, env)
		if err != nil {
			return 0, nil, err
		}
		return choose(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		t, err := readTaken(ctx, env)
		if err != nil {
			return 0, nil, err
		}
		c.t = t
	}
	vmid, ips, err := choose(c.t)
	if err != nil {
		return 0, nil, err
	}
	if vmid != 0 {
		c.t.vmids[vmid] = true
	}
	for _, ip := range ips {
		c.t.ips[ip.Address] = true
	}
	return vmid, ips, nil
}

// Reset drops the view: the next pick reads it again (another process
// took a value the view thought free).
func (c *Claims) Reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.t = nil
	c.mu.Unlock()
}
