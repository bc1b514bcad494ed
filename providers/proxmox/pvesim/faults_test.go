package pvesim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	proxmox "github.com/luthermonson/go-proxmox"
	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim/internal/schemagen"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	const clone = "POST /nodes/{node}/qemu/{vmid}/clone"
	tests := []struct {
		name  string
		setup func(e *env)
		check func(t *testing.T, e *env)
	}{
		{"fail next N with status and message", func(e *env) {
			e.sim.FailNext(pvesim.FailNext{Endpoint: clone, Count: 2, Status: 500, Message: "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"})
		}, func(t *testing.T, e *env) {
			for range 2 {
				r := e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101"))
				require.Equal(t, "500 can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout", r.status)
				require.Equal(t, "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout\n", r.body["message"])
			}
			e.clone("101")
		}},
		{"fail next after apply (ambiguous 596)", func(e *env) {
			e.sim.FailNext(pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Status: 596, AfterApply: true})
		}, func(t *testing.T, e *env) {
			r := e.do("PUT", "/nodes/pve1/qemu/9000/config", form("description", "changed"))
			require.Equal(t, "596 Connection timed out", r.status)
			vm, _ := e.sim.VM(9000)
			require.Equal(t, "changed", vm.Config["description"])
		}},
		{"error rate 1", func(e *env) {
			e.sim.SetErrorRate(pvesim.ErrorRate{Endpoint: "GET /cluster/resources", Rate: 1, Status: 503})
		}, func(t *testing.T, e *env) {
			require.Equal(t, "503 Service Unavailable", e.do("GET", "/cluster/resources", nil).status)
			require.Equal(t, 200, e.do("GET", "/cluster/nextid", nil).code)
			e.sim.SetErrorRate(pvesim.ErrorRate{Endpoint: "GET /cluster/resources", Rate: 0})
			require.Equal(t, 200, e.do("GET", "/cluster/resources", nil).code)
		}},
		{"latency", func(e *env) { e.sim.SetLatency(30*time.Millisecond, 10*time.Millisecond) }, func(t *testing.T, e *env) {
			start := time.Now()
			e.do("GET", "/version", nil)
			require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
		}},
		{"task fails with exit status", func(e *env) {
			e.sim.FailTask(pvesim.TaskFault{Type: "qmclone", ExitStatus: "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout", Count: 1})
		}, func(t *testing.T, e *env) {
			up := e.clone("101")
			st := e.waitTask(up)
			require.Equal(t, "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout", st["exitstatus"])
			_, exists := e.sim.VM(101)
			require.False(t, exists, "failed clone cleans up its config")
			lg := e.do("GET", "/nodes/pve1/tasks/"+up+"/log", nil).body["data"].([]any)
			require.Equal(t, "TASK ERROR: clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout", lg[len(lg)-1].(map[string]any)["t"])
			require.Equal(t, "OK", e.waitTask(e.clone("102"))["exitstatus"], "count 1: next clone works")
		}},
		{"task warnings", func(e *env) { e.sim.FailTask(pvesim.TaskFault{Type: "qmstart", ExitStatus: "WARNINGS: 1"}) }, func(t *testing.T, e *env) {
			e.waitTask(e.clone("101"))
			st := e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))
			require.Equal(t, "WARNINGS: 1", st["exitstatus"])
			vm, _ := e.sim.VM(101)
			require.Equal(t, "running", vm.Status)
		}},
		{"worker dies leaving lock (stale lock)", func(e *env) {
			e.sim.FailTask(pvesim.TaskFault{Type: "qmclone", VMID: 103, ExitStatus: "unexpected status", KeepLock: true})
		}, func(t *testing.T, e *env) {
			st := e.waitTask(e.clone("103"))
			require.Equal(t, "unexpected status", st["exitstatus"])
			vm, ok := e.sim.VM(103)
			require.True(t, ok)
			require.Equal(t, "clone", vm.Lock)
		}},
		{"task hangs", func(e *env) { e.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", Hang: true}) }, func(t *testing.T, e *env) {
			up := e.upid(e.do("POST", "/nodes/pve1/qemu/9000/status/shutdown", nil))
			e.sim.Advance(24 * time.Hour)
			require.Equal(t, "running", e.taskStatus(up)["status"])
		}},
		{"leave lock", func(e *env) { require.NoError(e.t, e.sim.LeaveLock(9000, "backup")) }, func(t *testing.T, e *env) {
			r := e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101"))
			require.Equal(t, "500 VM is locked (backup)", r.status)
			require.Equal(t, "500 VM is locked (backup)", e.do("POST", "/nodes/pve1/qemu/9000/config", form("cores", "1")).status)
		}},
		{"node offline 595", func(e *env) { require.NoError(e.t, e.sim.SetNodeOffline("pve2", true)) }, func(t *testing.T, e *env) {
			r := e.do("GET", "/nodes/pve2/status", nil)
			require.Equal(t, "595 Errors during connection establishment, proxy handshake: Connection refused", r.status)
			res := e.do("GET", "/cluster/resources", form("type", "node")).body["data"].([]any)
			require.Equal(t, "offline", res[1].(map[string]any)["status"])
			require.Equal(t, 200, e.do("GET", "/nodes/pve1/status", nil).code)
		}},
		{"never running", func(e *env) {}, func(t *testing.T, e *env) {
			e.waitTask(e.clone("101"))
			e.sim.SetNeverRunning(101, true)
			st := e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))
			require.Equal(t, "OK", st["exitstatus"])
			cur := e.do("GET", "/nodes/pve1/qemu/101/status/current", nil).body["data"].(map[string]any)
			require.Equal(t, "stopped", cur["status"])
		}},
		{"no quorum", func(e *env) { e.sim.SetQuorum(false) }, func(t *testing.T, e *env) {
			require.Equal(t, "500 cluster not ready - no quorum?", e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101")).status)
			require.Equal(t, 200, e.do("GET", "/cluster/resources", nil).code)
		}},
		{"storage full", func(e *env) {}, func(t *testing.T, e *env) {
			e.waitTask(e.clone("101", "full", "1"))
			st := e.waitTask(e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "+2T"))))
			require.Regexp(t, `^not enough free space \(\d+ < \d+\)$`, st["exitstatus"])
			st = e.waitTask(e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "1G"))))
			require.Equal(t, "shrinking disks is not supported", st["exitstatus"])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.t = t
			tc.setup(e)
			tc.check(t, e)
			e.sim.RequireNoRejections(t)
		})
	}
}

func TestControlEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := strings.TrimSuffix(e.api, "/api2/json") + "/_sim"
	post := func(path, body string) int {
		res, err := http.Post(base+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, 200, post("/faults/fail-next", `{"endpoint":"POST /nodes/{node}/qemu/{vmid}/clone","count":1,"status":500,"message":"VM is locked (backup)"}`))
	require.Equal(t, 400, post("/faults/fail-next", `{"endpoint":"POST /nope"}`))
	require.Equal(t, "500 VM is locked (backup)", e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101")).status)
	require.Equal(t, 200, post("/faults/node", `{"node":"pve2","offline":true}`))
	require.Equal(t, 595, e.do("GET", "/nodes/pve2/status", nil).code)
	require.Equal(t, 200, post("/faults/lock", `{"vmid":9000,"lock":"snapshot"}`))
	require.Equal(t, 200, post("/faults/task", `{"type":"qmstart","exitstatus":"WARNINGS: 2"}`))
	require.Equal(t, 200, post("/faults/latency", `{"fixed":"1ms","jitter":"1ms"}`))
	require.Equal(t, 200, post("/faults/error-rate", `{"endpoint":"GET /version","rate":0.5}`))
	require.Equal(t, 200, post("/faults/never-running", `{"vmid":9000,"on":true}`))
	require.Equal(t, 200, post("/faults/quorum", `{"quorate":false}`))
	require.Equal(t, 200, post("/clock/advance", `{"duration":"90s"}`))
	require.Equal(t, pvesim.DefaultStart.Add(90*time.Second), e.sim.Clock().Now())

	res, err := http.Get(base + "/state")
	require.NoError(t, err)
	var st pvesim.State
	require.NoError(t, json.NewDecoder(res.Body).Decode(&st))
	res.Body.Close()
	require.Equal(t, []string{"pve2"}, st.Faults.OfflineNodes)
	require.False(t, st.Faults.Quorate)
	require.Len(t, st.VMs, 1)
	require.Equal(t, "snapshot", st.VMs[0].Lock)

	req, _ := http.NewRequest("DELETE", base+"/faults", nil)
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, e.do("GET", "/nodes/pve2/status", nil).code)
}

func TestGoProxmoxClient(t *testing.T) {
	t.Parallel()
	sim, api, id, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
	ctx := context.Background()
	c := proxmox.NewClient(api, proxmox.WithAPIToken(id, secret))

	v, err := c.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, "8.4.5", v.Version)
	cl, err := c.Cluster(ctx)
	require.NoError(t, err)
	next, err := cl.NextID(ctx)
	require.NoError(t, err)
	require.Equal(t, 100, next)
	node, err := c.Node(ctx, "pve1")
	require.NoError(t, err)
	tmpl, err := node.VirtualMachine(ctx, 9000)
	require.NoError(t, err)
	require.True(t, bool(tmpl.Template))

	newid, task, err := tmpl.Clone(ctx, &proxmox.VirtualMachineCloneOptions{NewID: 101, Name: "web-1", Full: true, Storage: "local-lvm"})
	require.NoError(t, err)
	require.Equal(t, 101, newid)
	require.Equal(t, "qmclone", task.Type)
	require.Equal(t, "9000", task.ID)
	require.NoError(t, task.Ping(ctx))
	require.True(t, task.IsRunning)
	sim.Advance(time.Minute)
	// rehydrate from a stored UPID
	task2 := proxmox.NewTask(task.UPID, c)
	require.NoError(t, task2.Ping(ctx))
	require.True(t, task2.IsSuccessful, "exit %q", task2.ExitStatus)

	vm, err := node.VirtualMachine(ctx, 101)
	require.NoError(t, err)
	require.False(t, bool(vm.Template))
	require.Equal(t, "web-1", vm.Name)
	cfgTask, err := vm.Config(ctx, proxmox.VirtualMachineOption{Name: "cores", Value: 4}, proxmox.VirtualMachineOption{Name: "sshkeys", Value: proxmox.EncodeSSHKeys(testKeyEd25519)})
	require.NoError(t, err)
	require.NotNil(t, cfgTask)
	require.NoError(t, vm.ConfigSync(ctx, proxmox.VirtualMachineOption{Name: "ipconfig0", Value: "ip=192.0.2.10/24,gw=192.0.2.1"}))
	rt, err := vm.ResizeDisk(ctx, "scsi0", "+10G")
	require.NoError(t, err)
	require.Equal(t, "resize", rt.Type)
	st, err := vm.Start(ctx)
	require.NoError(t, err)
	sim.Advance(time.Minute)
	require.NoError(t, st.Ping(ctx))
	require.True(t, st.IsSuccessful)
	require.NoError(t, vm.Ping(ctx))
	require.True(t, vm.IsRunning())
	require.Equal(t, 4, *vm.VirtualMachineConfig.Cores)

	// errors surface as go-proxmox reads them: the status line
	_, err = node.VirtualMachine(ctx, 555)
	require.EqualError(t, err, "500 Configuration file 'nodes/pve1/qemu-server/555.conf' does not exist")
	_, err = vm.Delete(ctx, &proxmox.VirtualMachineDeleteOptions{Purge: true})
	require.EqualError(t, err, "500 VM 101 is running - destroy failed")

	res, err := cl.Resources(ctx, "vm")
	require.NoError(t, err)
	require.Len(t, res, 2)
	snaps, err := vm.Snapshots(ctx)
	require.NoError(t, err)
	require.Equal(t, "current", snaps[len(snaps)-1].Name)
	rrd, err := vm.RRDData(ctx, proxmox.TimeframeHour, proxmox.AVERAGE)
	require.NoError(t, err)
	require.Len(t, rrd, 70)

	bad := proxmox.NewClient(api, proxmox.WithAPIToken(id, "wrong"))
	_, err = bad.Version(ctx)
	require.True(t, proxmox.IsNotAuthorized(err), "%v", err)
	sim.RequireNoRejections(t)
}

// TestSchemaSubsetUpToDate re-derives the committed schema subset from the
// full schemas in ../shared/pve-api and fails if it drifted.
func TestSchemaSubsetUpToDate(t *testing.T) {
	t.Parallel()
	shared := filepath.Join("..", "..", "..", "..", "shared", "pve-api")
	full84, err := os.ReadFile(filepath.Join(shared, "apidoc-pve8.4.5.json"))
	require.NoError(t, err, "the full PVE schemas must be in %s (CI has ../shared beside the clone)", shared)
	full92, err := os.ReadFile(filepath.Join(shared, "pve9.2.3-schema-normalized.json"))
	require.NoError(t, err)
	f, err := schemagen.Generate(full84, full92)
	require.NoError(t, err)
	for name, want := range map[string][]byte{
		filepath.Join("..", "..", "..", "testdata", "pvesim-schema", "pve8.4.5.json"): f.Schema84,
		filepath.Join("..", "..", "..", "testdata", "pvesim-schema", "pve9.2.3.json"): f.Schema92,
		"schema_data.go": f.GoFile,
	} {
		got, err := os.ReadFile(name)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "%s drifted from the full schemas: run go generate ./providers/proxmox/pvesim/", name)
	}
}

func TestExampleClusterYAML(t *testing.T) {
	t.Parallel()
	c, err := pvesim.LoadCluster(filepath.Join("..", "..", "..", "testdata", "pvesim", "cluster.yaml"))
	require.NoError(t, err)
	def := pvesim.DefaultCluster()
	require.Equal(t, def.Nodes, c.Nodes)
	require.Equal(t, def.VMs, c.VMs)
	require.Equal(t, def.Durations, c.Durations)
	require.Equal(t, def.Tokens[0], c.Tokens[0])
	_, err = pvesim.New(c)
	require.NoError(t, err)
	_, err = pvesim.ParseCluster([]byte("nodes:\n  - name: pve1\n    bogus: 1\n"))
	require.Error(t, err)
}

func TestHandlerWithoutHijack(t *testing.T) {
	t.Parallel()
	sim, err := pvesim.New(pvesim.DefaultCluster(), pvesim.WithManualClock(pvesim.DefaultStart))
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api2/json/nodes/pve1/qemu/555/config", nil)
	req.Header.Set("Authorization", "PVEAPIToken="+pvesim.DefaultTokenID+"="+pvesim.DefaultSecret)
	sim.Handler().ServeHTTP(rec, req)
	require.Equal(t, 500, rec.Code)
	require.JSONEq(t, `{"data":null,"message":"Configuration file 'nodes/pve1/qemu-server/555.conf' does not exist\n"}`, rec.Body.String())
}

// A fractional error rate fails some calls and lets the others through.
// The RNG is seedable (pvesim.WithSeed), so each run of this test sees the
// same sequence; the bands are still loose (rate 0.5 over 200 calls has a
// standard deviation of ~7) so the test does not depend on the exact stream
// of math/rand/v2's PCG or on how many draws other code takes from it.
func TestErrorRateFractionalSeeded(t *testing.T) {
	t.Parallel()
	const calls = 200
	auth := "PVEAPIToken=" + pvesim.DefaultTokenID + "=" + pvesim.DefaultSecret
	serve := func(t *testing.T, sim *pvesim.Sim, method, path, body string) *httptest.ResponseRecorder {
		t.Helper()
		var req *http.Request
		if body != "" {
			req = httptest.NewRequest(method, "/api2/json"+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest(method, "/api2/json"+path, nil)
		}
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		sim.Handler().ServeHTTP(rec, req) // in-process, no network
		return rec
	}
	// run returns the pass (true) / fail (false) sequence of calls GETs of
	// /version with a 0.5 error rate of 503.
	run := func(t *testing.T, seed uint64) []bool {
		t.Helper()
		sim, err := pvesim.New(pvesim.DefaultCluster(), pvesim.WithManualClock(pvesim.DefaultStart), pvesim.WithSeed(seed))
		require.NoError(t, err)
		sim.SetErrorRate(pvesim.ErrorRate{Endpoint: "GET /version", Rate: 0.5, Status: 503})
		var seq []bool
		for range calls {
			rec := serve(t, sim, "GET", "/version", "")
			switch rec.Code {
			case 200:
				require.Contains(t, rec.Body.String(), `"version":"8.4.5"`)
				seq = append(seq, true)
			case 503:
				require.JSONEq(t, `{"data":null,"message":"Service Unavailable\n"}`, rec.Body.String())
				seq = append(seq, false)
			default:
				t.Fatalf("unexpected %d %s", rec.Code, rec.Body.String())
			}
			// Other endpoints are not affected by the rate.
			require.Equal(t, 200, serve(t, sim, "GET", "/cluster/nextid", "").Code)
		}
		// Every call was recorded with its status, none as a schema rejection.
		var fails int
		for _, r := range sim.Requests() {
			if r.Endpoint == "GET /version" && r.Status == 503 {
				fails++
			}
		}
		require.Equal(t, count(seq, false), fails)
		sim.RequireNoRejections(t)
		return seq
	}

	a := run(t, 42)
	ok, failed := count(a, true), count(a, false)
	require.Equal(t, calls, ok+failed)
	t.Logf("seed 42: %d of %d calls failed", failed, calls)
	require.True(t, failed >= 60 && failed <= 140, "rate 0.5 over %d calls: %d failed, %d succeeded", calls, failed, ok)
	require.Equal(t, a, run(t, 42), "the same seed gives the same failures")
	require.NotEqual(t, a, run(t, 7), "another seed gives other failures")

	// A failed mutation is not applied; a successful one is.
	sim, err := pvesim.New(pvesim.DefaultCluster(), pvesim.WithManualClock(pvesim.DefaultStart), pvesim.WithSeed(42))
	require.NoError(t, err)
	sim.SetErrorRate(pvesim.ErrorRate{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Rate: 0.5})
	want, applied := "", 0
	for i := range calls {
		desc := "d" + strconv.Itoa(i)
		rec := serve(t, sim, "PUT", "/nodes/pve1/qemu/9000/config", "description="+desc)
		switch rec.Code {
		case 200:
			want = desc
			applied++
		case 500:
			require.JSONEq(t, `{"data":null,"message":"got no worker upid - start worker failed\n"}`, rec.Body.String())
		default:
			t.Fatalf("unexpected %d %s", rec.Code, rec.Body.String())
		}
		vm, _ := sim.VM(9000)
		require.Equal(t, want, vm.Config["description"], "call %d", i)
	}
	require.True(t, applied >= 60 && applied <= 140, "rate 0.5 over %d calls: %d applied", calls, applied)
	t.Logf("seed 42: %d of %d config changes applied", applied, calls)
	sim.RequireNoRejections(t)
}

func count(seq []bool, v bool) int {
	n := 0
	for _, x := range seq {
		if x == v {
			n++
		}
	}
	return n
}
