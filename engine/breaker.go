package engine

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
)

// BreakerAfter is how many steps in a row of one pass may fail because PVE
// could not be reached before the pass stops calling it.
const BreakerAfter = 3

// pveBreaker is a pass's circuit breaker for PVE (one cluster endpoint per
// config). A step whose error says PVE could not be reached (no answer, or
// 502/503/504 from what is in front of it) or refused pvectl's token (401)
// is not the VM's fault: the VM waits, with no attempt counted and no
// backoff, instead of backing off towards 30 minutes while PVE is down.
// After BreakerAfter such steps in a row, or at the first 401, the pass
// stops calling PVE: the VMs left are not touched this tick, and one line
// says so at the end of the pass.
type pveBreaker struct {
	mu          sync.Mutex
	consecutive int
	open        bool
	auth        bool
	cause       error
	skipped     int
}

// PVEOutage reports whether err says PVE could not be reached at all: a
// transport error (connection refused, reset, timeout: no HTTP status) or
// 502/503/504 from a proxy in front of it; not an error PVE answered, not a
// failed task, not one node behind the API being unreachable (595).
func PVEOutage(err error) bool {
	var pe *proxmox.Error
	if !errors.As(err, &pe) || !pe.Task.IsZero() || pe.Class != proxmox.ClassTransient {
		return false
	}
	switch pe.HTTPStatus {
	case 0, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// skip reports whether the pass has stopped calling PVE; a VM not touched
// because of it is counted.
func (b *pveBreaker) skip() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		b.skipped++
	}
	return b.open
}

// observe looks at a step's result: an outage or a refused token becomes
// a wait that counts nothing (Result.Outage) and may open the breaker; any
// other result closes the run of failures.
func (b *pveBreaker) observe(res states.Result) states.Result {
	if !res.Kind.Failed() {
		b.mu.Lock()
		b.consecutive = 0
		b.mu.Unlock()
		return res
	}
	auth := proxmox.IsAuth(res.Err)
	if !auth && !PVEOutage(res.Err) {
		b.mu.Lock()
		b.consecutive = 0
		b.mu.Unlock()
		return res
	}
	b.mu.Lock()
	b.consecutive++
	if auth || b.consecutive >= BreakerAfter {
		if !b.open {
			b.open, b.auth, b.cause = true, auth, res.Err
		}
	}
	b.mu.Unlock()
	why := "PVE unreachable: "
	if auth {
		why = "PVE refuses pvectl's API token: "
	}
	return states.Result{Kind: states.Waiting, Reason: why + states.ErrText(res.Err), Outage: true, ClearTask: res.ClearTask}
}

// summary is the pass's one line about the breaker ("" when it stayed
// closed) and the error the task ends with.
func (b *pveBreaker) summary(task string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return "", nil
	}
	if b.auth {
		err := fmt.Errorf("PVE refuses pvectl's API token (check proxmox.token_id and token_secret, and that the token exists and is not expired): %s", states.ErrText(b.cause))
		return fmt.Sprintf("%s: %v; stopped calling PVE, %d VM(s) not touched; no VM was held or backed off for it", task, err, b.skipped), err
	}
	err := fmt.Errorf("PVE unreachable (%d steps in a row): %s", BreakerAfter, states.ErrText(b.cause))
	return fmt.Sprintf("%s: %v; stopped calling PVE for this tick, %d VM(s) not touched; attempts unchanged", task, err, b.skipped), err
}
