package proxmox_test

// Integers of 1,000,000 or more on the wire (issue 9 item 12). go-proxmox's
// GetWithParams/DeleteWithParams round-trip query parameters through JSON
// floats and print them with %v, which sends vmid=1000000 as "1e+06"; PVE
// refuses that ("type check ('integer') failed"), so e.g. a terminate never
// found the backups of such a VM. Every Client method that takes a VMID or
// another integer is checked here on the wire, and the backup/terminate
// path end to end against pvesim (which applies PVE's schema).

import (
	"context"
	"encoding/json"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
)

// largeIDs are the largest six-digit VMID, the first one go-proxmox printed
// in exponent form, and PVE's maximum.
var largeIDs = []int{999999, 1000000, 999999999}

// wireWant is what one call must put on the wire. Query is compared
// exactly (nil = no query); Body lists keys that must be present with
// these values (JSON numbers decoded as json.Number).
type wireWant struct {
	Method, Path string
	Query        url.Values
	Body         map[string]any
}

type largeIntCall struct {
	method string // the Client method exercised
	call   func(ctx context.Context, a *proxmox.Adapter, id int) error
	want   func(s string) wireWant
}

func largeIntCalls() []largeIntCall {
	vmOf := func(id int) proxmox.VMRef { return proxmox.VMRef{Node: "pve", VMID: id} }
	qemu := func(s, suffix string) string { return "/api2/json/nodes/pve/qemu/" + s + suffix }
	num := func(s string) json.Number { return json.Number(s) }
	secs := func(id int) time.Duration { return time.Duration(id) * time.Second }
	task := func(_ proxmox.TaskRef, err error) error { return err }
	return []largeIntCall{
		{"VMStatus", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.VMStatus(ctx, vmOf(id))
			return err
		}, func(s string) wireWant { return wireWant{Method: "GET", Path: qemu(s, "/status/current")} }},
		{"VMConfig", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.VMConfig(ctx, vmOf(id))
			return err
		}, func(s string) wireWant { return wireWant{Method: "GET", Path: qemu(s, "/config")} }},
		{"SetConfig", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.SetConfig(ctx, vmOf(id), proxmox.ConfigChange{Set: map[string]string{"balloon": strconv.Itoa(id), "cores": "2"}, SkipLock: true}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/config"), Body: map[string]any{"balloon": num(s), "cores": num("2"), "skiplock": num("1")}}
		}},
		{"SetConfigSync", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.SetConfigSync(ctx, vmOf(id), proxmox.ConfigChange{Set: map[string]string{"balloon": strconv.Itoa(id)}})
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: qemu(s, "/config"), Body: map[string]any{"balloon": num(s)}}
		}},
		{"SetCloudInit", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.SetCloudInit(ctx, vmOf(id), proxmox.CloudInit{User: "admin"})
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: qemu(s, "/config"), Body: map[string]any{"ciuser": "admin"}}
		}},
		{"Clone", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Clone(ctx, proxmox.CloneRequest{Source: vmOf(id), NewID: id, Mode: proxmox.CloneFull}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/clone"), Body: map[string]any{"newid": num(s), "full": num("1")}}
		}},
		{"ResizeDisk", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.ResizeDisk(ctx, vmOf(id), "scsi0", "40G"))
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: qemu(s, "/resize"), Body: map[string]any{"disk": "scsi0", "size": "40G"}}
		}},
		{"Migrate", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Migrate(ctx, proxmox.MigrateRequest{VM: vmOf(id), Target: "pve2", BWLimitKiB: id}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/migrate"), Body: map[string]any{"target": "pve2", "bwlimit": num(s)}}
		}},
		{"Start", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Start(ctx, vmOf(id), proxmox.StartOptions{Timeout: secs(id)}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/status/start"), Body: map[string]any{"timeout": num(s)}}
		}},
		{"Tasks", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.Tasks(ctx, "pve", proxmox.TaskFilter{VMID: id, Type: "qmreboot", Limit: id})
			return err
		}, func(s string) wireWant {
			return wireWant{Method: "GET", Path: "/api2/json/nodes/pve/tasks", Query: url.Values{"source": {"all"}, "vmid": {s}, "typefilter": {"qmreboot"}, "limit": {s}}}
		}},
		{"Reboot", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Reboot(ctx, vmOf(id), proxmox.RebootOptions{Timeout: secs(id)}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/status/reboot"), Body: map[string]any{"timeout": num(s)}}
		}},
		{"Shutdown", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Shutdown(ctx, vmOf(id), proxmox.ShutdownOptions{Timeout: secs(id), ForceStop: true}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/status/shutdown"), Body: map[string]any{"timeout": num(s), "forceStop": num("1")}}
		}},
		{"Stop", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Stop(ctx, vmOf(id), proxmox.StopOptions{Timeout: secs(id), OverruleShutdown: true}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/status/stop"), Body: map[string]any{"timeout": num(s), "overrule-shutdown": num("1")}}
		}},
		{"Delete", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Delete(ctx, vmOf(id), proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true}))
		}, func(s string) wireWant {
			return wireWant{Method: "DELETE", Path: qemu(s, ""), Query: url.Values{"purge": {"1"}, "destroy-unreferenced-disks": {"1"}}}
		}},
		{"FirewallOptions", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.FirewallOptions(ctx, vmOf(id))
			return err
		}, func(s string) wireWant { return wireWant{Method: "GET", Path: qemu(s, "/firewall/options")} }},
		{"SetFirewallOptions", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.SetFirewallOptions(ctx, vmOf(id), proxmox.FirewallOptions{Enable: proxmox.Bool(false)})
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: qemu(s, "/firewall/options"), Body: map[string]any{"enable": num("0")}}
		}},
		{"IPSets", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.IPSets(ctx, vmOf(id))
			return err
		}, func(s string) wireWant { return wireWant{Method: "GET", Path: qemu(s, "/firewall/ipset")} }},
		{"CreateIPSet", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.CreateIPSet(ctx, vmOf(id), "ipfilter-net0", "")
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/firewall/ipset"), Body: map[string]any{"name": "ipfilter-net0"}}
		}},
		{"DeleteIPSet", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.DeleteIPSet(ctx, vmOf(id), "ipfilter-net0", true)
		}, func(s string) wireWant {
			return wireWant{Method: "DELETE", Path: qemu(s, "/firewall/ipset/ipfilter-net0"), Query: url.Values{"force": {"1"}}}
		}},
		{"IPSetEntries", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.IPSetEntries(ctx, vmOf(id), "ipfilter-net0")
			return err
		}, func(s string) wireWant {
			return wireWant{Method: "GET", Path: qemu(s, "/firewall/ipset/ipfilter-net0")}
		}},
		{"AddIPSetEntry", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.AddIPSetEntry(ctx, vmOf(id), "ipfilter-net0", proxmox.IPSetEntry{CIDR: "192.0.2.10", NoMatch: true})
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/firewall/ipset/ipfilter-net0"), Body: map[string]any{"cidr": "192.0.2.10", "nomatch": num("1")}}
		}},
		{"RemoveIPSetEntry", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.RemoveIPSetEntry(ctx, vmOf(id), "ipfilter-net0", "192.0.2.10")
		}, func(s string) wireWant {
			return wireWant{Method: "DELETE", Path: qemu(s, "/firewall/ipset/ipfilter-net0/192.0.2.10")}
		}},
		{"Backup", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Backup(ctx, proxmox.BackupRequest{VM: vmOf(id), Storage: "local", Protected: true, Remove: proxmox.Bool(false)}))
		}, func(s string) wireWant {
			// vzdump's vmid is a pve-vmid-list: a string.
			return wireWant{Method: "POST", Path: "/api2/json/nodes/pve/vzdump",
				Body: map[string]any{"vmid": s, "storage": "local", "protected": num("1"), "remove": num("0")}}
		}},
		{"StorageContent", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.StorageContent(ctx, "pve", "local", proxmox.ContentFilter{Content: "backup", VMID: id})
			return err
		}, func(s string) wireWant {
			return wireWant{Method: "GET", Path: "/api2/json/nodes/pve/storage/local/content", Query: url.Values{"content": {"backup"}, "vmid": {s}}}
		}},
		{"DeleteVolume", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.DeleteVolume(ctx, "pve", "local", "local:backup/vzdump-qemu-"+strconv.Itoa(id)+"-2025_01_01-00_00_00.vma.zst"))
		}, func(s string) wireWant {
			return wireWant{Method: "DELETE", Path: "/api2/json/nodes/pve/storage/local/content/local:backup/vzdump-qemu-" + s + "-2025_01_01-00_00_00.vma.zst"}
		}},
		{"UpdateVolume", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			notes := "vm " + strconv.Itoa(id)
			return a.UpdateVolume(ctx, "pve", "local", "local:backup/vzdump-qemu-"+strconv.Itoa(id)+"-2025_01_01-00_00_00.vma.zst",
				proxmox.VolumeUpdate{Notes: &notes, Protected: proxmox.Bool(true)})
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: "/api2/json/nodes/pve/storage/local/content/local:backup/vzdump-qemu-" + s + "-2025_01_01-00_00_00.vma.zst",
				Body: map[string]any{"notes": "vm " + s, "protected": num("1")}}
		}},
		{"Restore", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.Restore(ctx, proxmox.RestoreRequest{VM: vmOf(id), Archive: "local:backup/x.vma.zst", Force: true, Unique: true}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: "/api2/json/nodes/pve/qemu",
				Body: map[string]any{"vmid": num(s), "archive": "local:backup/x.vma.zst", "force": num("1"), "unique": num("1")}}
		}},
		{"Snapshots", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.Snapshots(ctx, vmOf(id))
			return err
		}, func(s string) wireWant { return wireWant{Method: "GET", Path: qemu(s, "/snapshot")} }},
		{"CreateSnapshot", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.CreateSnapshot(ctx, vmOf(id), proxmox.SnapshotRequest{Name: "s1", VMState: true}))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/snapshot"), Body: map[string]any{"snapname": "s1", "vmstate": num("1")}}
		}},
		{"DeleteSnapshot", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.DeleteSnapshot(ctx, vmOf(id), "s1", true))
		}, func(s string) wireWant {
			return wireWant{Method: "DELETE", Path: qemu(s, "/snapshot/s1"), Query: url.Values{"force": {"1"}}}
		}},
		{"RollbackSnapshot", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return task(a.RollbackSnapshot(ctx, vmOf(id), "s1", true))
		}, func(s string) wireWant {
			return wireWant{Method: "POST", Path: qemu(s, "/snapshot/s1/rollback"), Body: map[string]any{"start": num("1")}}
		}},
		{"RRDData", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.RRDData(ctx, vmOf(id), proxmox.TimeframeDay, proxmox.CFMax)
			return err
		}, func(s string) wireWant {
			return wireWant{Method: "GET", Path: qemu(s, "/rrddata"), Query: url.Values{"timeframe": {"day"}, "cf": {"MAX"}}}
		}},
		{"AddToPool", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.AddToPool(ctx, "cust", id)
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: "/api2/json/pools", Body: map[string]any{"poolid": "cust", "vms": s}}
		}},
		{"RemoveFromPool", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			return a.RemoveFromPool(ctx, "cust", id)
		}, func(s string) wireWant {
			return wireWant{Method: "PUT", Path: "/api2/json/pools", Body: map[string]any{"poolid": "cust", "vms": s, "delete": num("1")}}
		}},
		{"TaskLog", func(ctx context.Context, a *proxmox.Adapter, id int) error {
			_, err := a.TaskLog(ctx, proxmox.TaskRef{Node: "pve", UPID: wireUPID}, id, id)
			return err
		}, func(s string) wireWant {
			return wireWant{Method: "GET", Path: "/api2/json/nodes/pve/tasks/" + wireUPID + "/log", Query: url.Values{"start": {s}, "limit": {s}}}
		}},
	}
}

// requireNoExponent fails if text carries a number in exponent form, raw
// or percent-encoded ("1e+06", "1e%2B06", "1E+06").
func requireNoExponent(t *testing.T, what, text string) {
	t.Helper()
	l := strings.ToLower(text)
	require.NotContains(t, l, "e+", "%s: %s", what, text)
	require.NotContains(t, l, "e%2b", "%s: %s", what, text)
}

// Every Client method that takes a VMID or an integer sends it in decimal
// (vmid=1000000, never 1e+06), in the path, the query and the JSON body.
func TestWireLargeIntegers(t *testing.T) {
	t.Parallel()
	calls := largeIntCalls()

	// The table covers every Client method except those with neither a VMID
	// nor an integer parameter.
	noInts := map[string]bool{"ClusterResources": true, "Version": true, "NodeBridges": true, "NodeStatus": true, "StorageStatus": true, "TaskStatus": true,
		"ACL": true, "Permissions": true, "GrantACL": true, "RevokeACL": true}
	var want, got []string
	ct := reflect.TypeOf((*proxmox.Client)(nil)).Elem()
	for i := range ct.NumMethod() {
		if m := ct.Method(i).Name; !noInts[m] {
			want = append(want, m)
		}
	}
	for _, c := range calls {
		got = append(got, c.method)
	}
	sort.Strings(want)
	sort.Strings(got)
	require.Equal(t, want, got, "every Client method taking a VMID or an integer is in the table")

	ctx := context.Background()
	for _, id := range largeIDs {
		s := strconv.Itoa(id)
		for _, c := range calls {
			t.Run(c.method+"/"+s, func(t *testing.T) {
				t.Parallel()
				// {"data": null}: every call decodes it (a zero TaskRef for tasks).
				srv, reqs := captureServer(t, nil)
				a := newWireAdapter(t, srv.URL)
				require.NoError(t, c.call(ctx, a, id))
				rs := reqs()
				require.Len(t, rs, 1)
				r := rs[0]
				w := c.want(s)

				requireNoExponent(t, "path", r.RawPath)
				requireNoExponent(t, "query", r.Query)
				requireNoExponent(t, "body", r.RawBody)

				require.Equal(t, w.Method, r.Method)
				require.Equal(t, w.Path, r.Path)
				if w.Query == nil {
					require.Empty(t, r.Query)
				} else {
					q, err := url.ParseQuery(r.Query)
					require.NoError(t, err)
					require.Equal(t, w.Query, q, "raw query %q", r.Query)
				}
				if w.Body == nil {
					require.Empty(t, r.RawBody)
				} else {
					require.Equal(t, "application/json", r.ContentType)
					for k, v := range w.Body {
						require.Equal(t, v, r.Body[k], "body key %s in %s", k, r.RawBody)
					}
				}
				// The integer itself, literally, where it was expected.
				switch {
				case w.Query.Get("vmid") != "":
					require.Contains(t, r.Query, "vmid="+s)
				case w.Query.Get("start") != "":
					require.Contains(t, r.Query, "limit="+s)
					require.Contains(t, r.Query, "start="+s)
				}
				for k, v := range w.Body {
					if v == json.Number(s) {
						require.Contains(t, r.RawBody, `"`+k+`":`+s)
					}
				}
			})
		}
	}
}

// End to end against pvesim, which applies PVE's schema (integer type
// check and pve-vmid's 100..999999999 range): a VM with a large VMID is
// cloned, configured, started, backed up, its backups found by the
// vmid-filtered storage listing (what terminate relies on), deleted, and
// destroyed; no request may be rejected.
func TestContractLargeVMIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, id := range largeIDs {
		vm := b.clone(t, id, "big"+strconv.Itoa(id))
		cfg, err := b.c.VMConfig(b.ctx, vm)
		require.NoError(t, err)
		require.Equal(t, "big"+strconv.Itoa(id), cfg.Name())
		b.must(t)(b.c.SetConfig(b.ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "2"}}))
		b.must(t)(b.c.Start(b.ctx, vm, proxmox.StartOptions{Timeout: time.Minute}))
		st, err := b.c.VMStatus(b.ctx, vm)
		require.NoError(t, err)
		require.True(t, st.Running())
		_, err = b.c.RRDData(b.ctx, vm, proxmox.TimeframeHour, "")
		require.NoError(t, err)

		ts := b.must(t)(b.c.Backup(b.ctx, proxmox.BackupRequest{VM: vm, Storage: "local", Remove: proxmox.Bool(false)}))
		require.Equal(t, strconv.Itoa(id), ts.ID)
		vols, err := b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: id})
		require.NoError(t, err)
		require.Len(t, vols, 1)
		require.Equal(t, id, vols[0].VMID)
		require.Contains(t, vols[0].VolID, "vzdump-qemu-"+strconv.Itoa(id)+"-")
		lines, err := b.c.TaskLog(b.ctx, ts.Task, 0, id)
		require.NoError(t, err)
		require.NotEmpty(t, lines)

		b.must(t)(b.c.Stop(b.ctx, vm, proxmox.StopOptions{}))
		b.must(t)(b.c.Delete(b.ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true}))
		ref, err := b.c.DeleteVolume(b.ctx, "pve1", "local", vols[0].VolID)
		require.NoError(t, err)
		if !ref.IsZero() {
			b.ok(t, ref, nil)
		}
		vols, err = b.c.StorageContent(b.ctx, "pve1", "local", proxmox.ContentFilter{Content: "backup", VMID: id})
		require.NoError(t, err)
		require.Empty(t, vols)
	}
	require.Empty(t, b.sim.Rejected(), "requests rejected by the PVE schema")
}

// The encoders themselves, for every value type they accept: no exponent
// whatever the magnitude, booleans as 1/0, anything else refused.
func TestParamEncodingNoExponent(t *testing.T) {
	t.Parallel()
	params := map[string]any{"vmid": 1000000, "max": 999999999, "i64": int64(1e15), "b": true, "f": false,
		"n": json.Number("1.5"), "x": 1e21, "s": "a b+c"}
	q, err := proxmox.QueryString(params)
	require.NoError(t, err)
	require.Equal(t, "b=1&f=0&i64=1000000000000000&max=999999999&n=1.5&s=a+b%2Bc&vmid=1000000&x=1000000000000000000000", q)

	body, err := proxmox.BodyParams(params)
	require.NoError(t, err)
	raw, err := json.Marshal(body)
	require.NoError(t, err)
	require.JSONEq(t, `{"vmid":1000000,"max":999999999,"i64":1000000000000000,"b":1,"f":0,"n":1.5,"x":1000000000000000000000,"s":"a b+c"}`, string(raw))
	require.NotContains(t, strings.ToLower(string(raw)), "e+")

	body, err = proxmox.BodyParams(nil)
	require.NoError(t, err)
	require.Nil(t, body)

	_, err = proxmox.QueryString(map[string]any{"vmid": []int{1}})
	require.ErrorContains(t, err, "vmid")
	_, err = proxmox.BodyParams(map[string]any{"vmid": struct{}{}})
	require.ErrorContains(t, err, "vmid")
}
