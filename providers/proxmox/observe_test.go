package proxmox_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// observation is one Options.Observe call.
type observation struct {
	endpoint string // "METHOD template"
	d        time.Duration
	err      error
}

// observed builds an adapter against url whose observations are recorded,
// with read retries that do not sleep.
func observed(t *testing.T, url, id, secret string) (*proxmox.Adapter, func() []observation) {
	t.Helper()
	var mu sync.Mutex
	var obs []observation
	a, err := proxmox.New(proxmox.Options{URL: url, TokenID: id, TokenSecret: secret,
		Observe: func(method, tmpl string, d time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			obs = append(obs, observation{endpoint: method + " " + tmpl, d: d, err: err})
		}})
	require.NoError(t, err)
	proxmox.SetReadRetrySleep(a, func(context.Context, time.Duration) error { return nil })
	return a, func() []observation {
		mu.Lock()
		defer mu.Unlock()
		return append([]observation(nil), obs...)
	}
}

// Every request the adapter sends, for every Client method, is observed
// once (each try of a retried read) under the endpoint pvesim routed it to,
// PVE's schema path ("GET /nodes/{node}/qemu/{vmid}/config"): never the
// concrete node, VMID, UPID, IP set or volume, never the query string,
// never the token.
func TestObserveEndpointTemplates(t *testing.T) {
	t.Parallel()
	sim, apiURL, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
	a, obs := observed(t, apiURL, tokenID, secret)
	ctx := context.Background()
	const id = 4242
	upid := "UPID:pve1:00001234:00ABCDEF:65A0B1C2:qmstart:4242:root@pam:"

	type call struct {
		method string
		call   func() error
	}
	var calls []call
	for _, c := range largeIntCalls() {
		calls = append(calls, call{c.method, func() error { return c.call(ctx, a, id) }})
	}
	calls = append(calls,
		call{"ClusterResources", func() error { _, err := a.ClusterResources(ctx, ""); return err }},
		call{"Version", func() error { _, err := a.Version(ctx); return err }},
		call{"NodeBridges", func() error { _, err := a.NodeBridges(ctx, "pve1"); return err }},
		call{"NodeStatus", func() error { _, err := a.NodeStatus(ctx, "pve1"); return err }},
		call{"StorageStatus", func() error { _, err := a.StorageStatus(ctx, "pve1", "local-lvm"); return err }},
		call{"TaskStatus", func() error {
			_, err := a.TaskStatus(ctx, proxmox.TaskRef{Node: "pve1", UPID: upid})
			return err
		}},
		call{"ACL", func() error { _, err := a.ACL(ctx); return err }},
		call{"GrantACL", func() error {
			return a.GrantACL(ctx, proxmox.ACLEntry{Path: "/pool/cust", RoleID: "PVEVMUser", UGID: "cust@pve", Type: "user"})
		}},
		call{"RevokeACL", func() error {
			return a.RevokeACL(ctx, proxmox.ACLEntry{Path: "/pool/cust", RoleID: "PVEVMUser", UGID: "cust@pve", Type: "user"})
		}},
	)

	for _, c := range calls {
		before, seen := len(obs()), len(sim.Requests())
		err := c.call()
		var want []string
		for _, r := range sim.Requests()[seen:] {
			want = append(want, r.Endpoint)
		}
		var got []string
		for _, o := range obs()[before:] {
			got = append(got, o.endpoint)
			require.NotContains(t, o.endpoint, strconv.Itoa(id), c.method)
			require.NotContains(t, o.endpoint, "pve1", c.method)
			require.NotContains(t, o.endpoint, "?", c.method)
			require.NotContains(t, o.endpoint, secret, c.method)
			require.GreaterOrEqual(t, o.d, time.Duration(0), c.method)
		}
		require.NotEmpty(t, want, "%s sent no request", c.method)
		require.Equal(t, want, got, "%s: observed endpoints are those pvesim routed", c.method)
		// The last try's error is the call's.
		last := obs()[len(obs())-1]
		if err == nil {
			require.NoError(t, last.err, c.method)
		} else {
			require.Error(t, last.err, c.method)
			require.Equal(t, proxmox.Classify(err), proxmox.Classify(last.err), c.method)
		}
	}
}

// An observation carries how long the request took and how it ended: a
// success with no error, a PVE refusal with its class, a transient
// failure once per try of a read.
func TestObserveOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		setup    func(*pvesim.Sim)
		call     func(context.Context, *proxmox.Adapter) error
		endpoint string
		tries    int
		class    proxmox.Class // of the error; ClassUnknown with ok
		ok       bool
		atLeast  time.Duration
	}{
		{name: "success with latency", setup: func(s *pvesim.Sim) { s.SetLatency(30*time.Millisecond, 0) },
			call: func(ctx context.Context, a *proxmox.Adapter) error {
				_, err := a.VMConfig(ctx, proxmox.VMRef{Node: "pve1", VMID: 9000})
				return err
			},
			endpoint: "GET /nodes/{node}/qemu/{vmid}/config", tries: 1, ok: true, atLeast: 30 * time.Millisecond},
		{name: "not found", setup: func(*pvesim.Sim) {},
			call: func(ctx context.Context, a *proxmox.Adapter) error {
				_, err := a.VMConfig(ctx, proxmox.VMRef{Node: "pve1", VMID: 4242})
				return err
			},
			endpoint: "GET /nodes/{node}/qemu/{vmid}/config", tries: 1, class: proxmox.ClassNotFound},
		{name: "transient read tried three times", setup: func(s *pvesim.Sim) {
			s.FailNext(pvesim.FailNext{Endpoint: "GET /cluster/resources", Count: 5, Status: 503})
		},
			call: func(ctx context.Context, a *proxmox.Adapter) error {
				_, err := a.ClusterResources(ctx, proxmox.ResourceVM)
				return err
			},
			endpoint: "GET /cluster/resources", tries: proxmox.ReadAttempts, class: proxmox.ClassTransient},
		{name: "write refused once", setup: func(s *pvesim.Sim) {
			s.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/clone", Count: 1, Status: 403,
				Message: "Permission check failed (/vms/9000, VM.Clone)"})
		},
			call: func(ctx context.Context, a *proxmox.Adapter) error {
				_, err := a.Clone(ctx, proxmox.CloneRequest{Source: proxmox.VMRef{Node: "pve1", VMID: 9000}, NewID: 4242, Mode: proxmox.CloneFull})
				return err
			},
			endpoint: "POST /nodes/{node}/qemu/{vmid}/clone", tries: 1, class: proxmox.ClassPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim, apiURL, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
			tt.setup(sim)
			a, obs := observed(t, apiURL, tokenID, secret)
			err := tt.call(context.Background(), a)
			got := obs()
			require.Len(t, got, tt.tries)
			for _, o := range got {
				require.Equal(t, tt.endpoint, o.endpoint)
				require.GreaterOrEqual(t, o.d, tt.atLeast)
				if tt.ok {
					require.NoError(t, o.err)
				} else {
					require.Equal(t, tt.class, proxmox.Classify(o.err), "%v", o.err)
					require.False(t, strings.Contains(o.err.Error(), secret))
				}
			}
			require.Equal(t, tt.ok, err == nil, "%v", err)
		})
	}
}
