package engine_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/stretchr/testify/require"
)

// What counts as PVE being unreachable (the circuit breaker's failures):
// no answer at all, or a proxy's 502/503/504; not what PVE itself
// answered, not a failed task, not one node behind the API (595).
func TestPVEOutage(t *testing.T) {
	t.Parallel()
	task := proxmox.TaskRef{Node: "pve1", UPID: "UPID:pve1:00001234:00005678:6B06CFDC:qmclone:9000:pvectl@pve!ci:"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused (no status)", &proxmox.Error{Class: proxmox.ClassTransient, Op: "GET /cluster/resources", Message: "connect: connection refused"}, true},
		{"wrapped by a step", fmt.Errorf("list cluster resources: %w", &proxmox.Error{Class: proxmox.ClassTransient, Message: "EOF"}), true},
		{"503 from a proxy", &proxmox.Error{Class: proxmox.ClassTransient, HTTPStatus: 503, Message: "Service Unavailable"}, true},
		{"502", &proxmox.Error{Class: proxmox.ClassTransient, HTTPStatus: 502}, true},
		{"504", &proxmox.Error{Class: proxmox.ClassTransient, HTTPStatus: 504}, true},
		{"595: one node unreachable", &proxmox.Error{Class: proxmox.ClassTransient, HTTPStatus: 595, Message: "Errors during connection establishment"}, false},
		{"500 lock timeout", &proxmox.Error{Class: proxmox.ClassLocked, HTTPStatus: 500, Message: "can't lock file"}, false},
		{"a failed task", &proxmox.Error{Class: proxmox.ClassTransient, Task: task, Message: "interrupted by signal"}, false},
		{"401", &proxmox.Error{Class: proxmox.ClassAuth, HTTPStatus: 401}, false},
		{"not PVE's", errors.New("disk full"), false},
		{"nil", nil, false},
	} {
		require.Equal(t, tc.want, engine.PVEOutage(tc.err), tc.name)
	}
}
