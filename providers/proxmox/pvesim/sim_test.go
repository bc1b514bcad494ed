package pvesim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

type env struct {
	t      *testing.T
	sim    *pvesim.Sim
	api    string
	header string
}

func newEnv(t *testing.T, mod ...func(*pvesim.Cluster)) *env {
	t.Helper()
	c := pvesim.DefaultCluster()
	for _, m := range mod {
		m(&c)
	}
	sim, api, id, secret := pvesim.StartTest(t, c)
	return &env{t: t, sim: sim, api: api, header: "PVEAPIToken=" + id + "=" + secret}
}

type resp struct {
	code   int
	status string // full status line after the code, e.g. "500 VM is locked (clone)"
	body   map[string]any
	raw    string
}

func (e *env) do(method, path string, params url.Values) resp {
	return e.doAuth(e.header, method, path, params)
}

func (e *env) doAuth(auth, method, path string, params url.Values) resp {
	e.t.Helper()
	u := e.api + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else if params != nil {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(e.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return e.send(req)
}

func (e *env) doJSON(method, path string, params map[string]any) resp {
	e.t.Helper()
	b, err := json.Marshal(params)
	require.NoError(e.t, err)
	req, err := http.NewRequest(method, e.api+path, bytes.NewReader(b))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", e.header)
	return e.send(req)
}

func (e *env) send(req *http.Request) resp {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	r := resp{code: res.StatusCode, status: res.Status, raw: string(raw)}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		require.NoError(e.t, dec.Decode(&r.body), "body %q", raw)
	}
	return r
}

// upid asserts a 200 with a UPID and returns it.
func (e *env) upid(r resp) string {
	e.t.Helper()
	require.Equal(e.t, 200, r.code, r.status)
	s, ok := r.body["data"].(string)
	require.True(e.t, ok, "data is not a string: %v", r.raw)
	require.Regexp(e.t, upidRe, s)
	return s
}

func (e *env) taskStatus(upid string) map[string]any {
	e.t.Helper()
	node := strings.Split(upid, ":")[1]
	r := e.do("GET", "/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", nil)
	require.Equal(e.t, 200, r.code, r.status)
	return r.body["data"].(map[string]any)
}

func (e *env) waitTask(upid string) map[string]any {
	e.t.Helper()
	e.sim.Advance(time.Minute)
	st := e.taskStatus(upid)
	require.Equal(e.t, "stopped", st["status"])
	return st
}

var upidRe = regexp.MustCompile(`^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$`)

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func (e *env) clone(newid string, kv ...string) string {
	e.t.Helper()
	return e.upid(e.do("POST", "/nodes/pve1/qemu/9000/clone", form(append([]string{"newid", newid}, kv...)...)))
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Tokens = append(c.Tokens, pvesim.TokenSpec{ID: "ro@pve!audit", Secret: "s3", Grants: []pvesim.Grant{{Path: "/", Privs: []string{"VM.Audit", "Sys.Audit"}}}})
	})
	tests := []struct {
		name, auth, method, path string
		code                     int
		status                   string
	}{
		{"no header", "", "GET", "/cluster/resources", 401, "401 No ticket"},
		{"wrong secret", "PVEAPIToken=pvectl@pve!ci=wrong", "GET", "/cluster/resources", 401, "401 Authentication failed!"},
		{"unknown token", "PVEAPIToken=x@pve!y=z", "GET", "/nodes", 401, "401 Authentication failed!"},
		{"good token", e.header, "GET", "/nodes", 200, "200 OK"},
		{"space form", "PVEAPIToken pvectl@pve!ci=" + pvesim.DefaultSecret, "GET", "/nodes", 200, "200 OK"},
		{"limited read ok", "PVEAPIToken=ro@pve!audit=s3", "GET", "/nodes/pve1/qemu/9000/config", 200, "200 OK"},
		{"limited power denied", "PVEAPIToken=ro@pve!audit=s3", "POST", "/nodes/pve1/qemu/9000/status/start", 403, "403 Permission check failed (/vms/9000, VM.PowerMgmt)"},
		{"limited clone denied", "PVEAPIToken=ro@pve!audit=s3", "POST", "/nodes/pve1/qemu/9000/clone", 403, "403 Permission check failed (/vms/9000, VM.Clone)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var params url.Values
			if tc.method == "POST" {
				params = form("newid", "150")
			}
			r := e.doAuth(tc.auth, tc.method, tc.path, params)
			require.Equal(t, tc.code, r.code)
			require.Equal(t, tc.status, r.status)
			if tc.code == 401 {
				require.Empty(t, r.raw)
			}
		})
	}
}

func TestSchemaRejection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		method string
		path   string
		params url.Values
		errors map[string]string
	}{
		{"unknown param", "POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101", "bogus", "1"),
			map[string]string{"bogus": "property is not defined in schema and the schema does not allow additional properties"}},
		{"missing required", "POST", "/nodes/pve1/qemu/9000/clone", form("name", "x"),
			map[string]string{"newid": "property is missing and it is not optional"}},
		{"wrong type integer", "POST", "/nodes/pve1/qemu/9000/clone", form("newid", "abc"),
			map[string]string{"newid": "type check ('integer') failed - got 'abc'"}},
		{"boolean true string", "POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101", "full", "true"),
			map[string]string{"full": "type check ('boolean') failed - got 'true'"}},
		{"below minimum", "POST", "/nodes/pve1/qemu/9000/clone", form("newid", "99"),
			map[string]string{"newid": "value must have a minimum value of 100"}},
		{"bad enum", "POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101", "format", "vdi"),
			map[string]string{"format": "value 'vdi' does not have a value in the enumeration 'raw', 'qcow2', 'vmdk'"}},
		{"bad pattern", "PUT", "/nodes/pve1/qemu/9000/resize", form("disk", "scsi0", "size", "10GB"),
			map[string]string{"size": "value does not match the regex pattern"}},
		{"bad disk enum", "PUT", "/nodes/pve1/qemu/9000/resize", form("disk", "scsi31", "size", "+1G"),
			map[string]string{"disk": "value 'scsi31' does not have a value in the enumeration 'ide0', 'ide1', 'ide2', 'ide3', 'scsi0', 'scsi1', 'scsi2', 'scsi3', 'scsi4', 'scsi5', 'scsi6', 'scsi7', 'scsi8', 'scsi9', 'scsi10', 'scsi11', 'scsi12', 'scsi13', 'scsi14', 'scsi15', 'scsi16', 'scsi17', 'scsi18', 'scsi19', 'scsi20', 'scsi21', 'scsi22', 'scsi23', 'scsi24', 'scsi25', 'scsi26', 'scsi27', 'scsi28', 'scsi29', 'scsi30', 'virtio0', 'virtio1', 'virtio2', 'virtio3', 'virtio4', 'virtio5', 'virtio6', 'virtio7', 'virtio8', 'virtio9', 'virtio10', 'virtio11', 'virtio12', 'virtio13', 'virtio14', 'virtio15', 'sata0', 'sata1', 'sata2', 'sata3', 'sata4', 'sata5', 'efidisk0', 'tpmstate0'"}},
		{"index out of range", "PUT", "/nodes/pve1/qemu/9000/config", form("net32", "virtio,bridge=vmbr0"),
			map[string]string{"net32": "property is not defined in schema and the schema does not allow additional properties"}},
		{"property string bad key", "PUT", "/nodes/pve1/qemu/9000/config", form("scsi1", "local-lvm:10,bogus=1"),
			map[string]string{"scsi1": "invalid format - invalid key in comma-separated list property: bogus\n"}},
		{"property string bad enum", "PUT", "/nodes/pve1/qemu/9000/config", form("net0", "virtio,bridge=vmbr0,firewall=maybe"),
			map[string]string{"net0": "invalid format - format error\nnet0.firewall: type check ('boolean') failed - got 'maybe'\n"}},
		// A Perl (?^:…) pattern in the schema (net[n].trunks) is enforced,
		// not waved through.
		{"property string perl pattern", "PUT", "/nodes/pve1/qemu/9000/config", form("net0", "virtio,bridge=vmbr0,trunks=abc"),
			map[string]string{"net0": "invalid format - format error\nnet0.trunks: value does not match the regex pattern\n"}},
		{"ipconfig bad ip", "PUT", "/nodes/pve1/qemu/9000/config", form("ipconfig0", "ip=10.0.0.300/24,gw=10.0.0.1"),
			map[string]string{"ipconfig0": "invalid format - format error\nip: invalid format - invalid IPv4 network: '10.0.0.300/24'\n"}},
		{"sshkeys plus encoded", "PUT", "/nodes/pve1/qemu/9000/config", form("sshkeys", "ssh-ed25519+AAAA"),
			map[string]string{"sshkeys": "invalid format - invalid urlencoded string: ssh-ed25519+AAAA\n"}},
		{"bad vmid in path", "GET", "/nodes/pve1/qemu/99/config", nil,
			map[string]string{"vmid": "value must have a minimum value of 100"}},
		{"nextid wrong type", "GET", "/cluster/nextid", form("vmid", "x"),
			map[string]string{"vmid": "type check ('integer') failed - got 'x'"}},
		{"rrd timeframe enum", "GET", "/nodes/pve1/qemu/9000/rrddata", form("timeframe", "minute"),
			map[string]string{"timeframe": "value 'minute' does not have a value in the enumeration 'hour', 'day', 'week', 'month', 'year'"}},
		// Valid on 8.4.5 (deprecated there) but dropped from the 9.2.3 schema:
		// only the 9.x schema can reject it, so this row proves both schemas
		// are enforced.
		{"removed in 9.x", "POST", "/nodes/pve1/vzdump", form("vmid", "9000", "storage", "local", "notification-policy", "always"),
			map[string]string{"notification-policy": "property is not defined in schema and the schema does not allow additional properties"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.params)
			require.Equal(t, 400, r.code, r.raw)
			require.Equal(t, "400 Parameter verification failed.", r.status)
			require.Nil(t, r.body["data"])
			require.Contains(t, r.body, "data")
			require.Equal(t, "Parameter verification failed.\n", r.body["message"])
			got := map[string]string{}
			for k, v := range r.body["errors"].(map[string]any) {
				got[k] = v.(string)
			}
			require.Equal(t, tc.errors, got)
		})
	}
	require.Len(t, e.sim.Rejected(), len(tests))
	// The same Perl pattern lets a valid value through.
	r := e.do("PUT", "/nodes/pve1/qemu/9000/config", form("net0", "virtio,bridge=vmbr0,trunks=10;20-30"))
	require.Equal(t, 200, r.code, r.raw)
	require.Len(t, e.sim.Rejected(), len(tests))
	// JSON bodies are validated the same way; JSON booleans are accepted.
	r = e.doJSON("POST", "/nodes/pve1/qemu/9000/clone", map[string]any{"newid": 101, "full": true, "name": "web-1"})
	e.upid(r)
	r = e.doJSON("POST", "/nodes/pve1/qemu/9000/clone", map[string]any{"newid": "x102"})
	require.Equal(t, 400, r.code)
}

func TestGoldenShapes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// nextid is a JSON string
	r := e.do("GET", "/cluster/nextid", nil)
	require.JSONEq(t, `{"data":"100"}`, r.raw)
	r = e.do("GET", "/cluster/nextid", form("vmid", "9000"))
	require.Equal(t, "400 Parameter verification failed.", r.status)
	require.Equal(t, map[string]any{"vmid": "VM 9000 already exists"}, r.body["errors"])

	// clone: UPID whose id is the SOURCE vmid; new config locked while it runs
	up := e.clone("101", "name", "web-1", "full", "1", "storage", "local-lvm")
	require.Contains(t, up, ":qmclone:9000:pvectl@pve!ci:")
	require.True(t, strings.HasPrefix(up, "UPID:pve1:"))
	cfg := e.do("GET", "/nodes/pve1/qemu/101/config", nil).body["data"].(map[string]any)
	require.Equal(t, "clone", cfg["lock"])
	require.NotEmpty(t, cfg["digest"])
	st := e.taskStatus(up)
	require.Equal(t, "running", st["status"])
	require.NotContains(t, st, "exitstatus")
	require.Equal(t, "pvectl@pve", st["user"])
	require.Equal(t, "ci", st["tokenid"])
	require.Equal(t, "qmclone", st["type"])
	require.Equal(t, "9000", st["id"])
	for _, k := range []string{"pid", "pstart", "starttime"} {
		_, isNum := st[k].(json.Number)
		require.True(t, isNum, "%s must be a number", k)
	}

	st = e.waitTask(up)
	require.Equal(t, "OK", st["exitstatus"])
	cfg = e.do("GET", "/nodes/pve1/qemu/101/config", nil).body["data"].(map[string]any)
	require.NotContains(t, cfg, "lock")
	require.NotContains(t, cfg, "template")
	require.Equal(t, "web-1", cfg["name"])
	require.Equal(t, "2048", cfg["memory"], "memory is a string")
	require.Equal(t, "1", cfg["agent"], "agent is a string")
	require.Equal(t, json.Number("2"), cfg["cores"], "cores is a number")
	require.Equal(t, "local-lvm:vm-101-disk-0,size=32G", cfg["scsi0"])

	// template config: template is integer 1
	tcfg := e.do("GET", "/nodes/pve1/qemu/9000/config", nil).body["data"].(map[string]any)
	require.Equal(t, json.Number("1"), tcfg["template"])

	// status/current: template key only for templates; name default
	cur := e.do("GET", "/nodes/pve1/qemu/101/status/current", nil).body["data"].(map[string]any)
	require.NotContains(t, cur, "template")
	require.Equal(t, "stopped", cur["status"])
	cur = e.do("GET", "/nodes/pve1/qemu/9000/status/current", nil).body["data"].(map[string]any)
	require.Equal(t, json.Number("1"), cur["template"])

	// PUT config: sync null; POST config: UPID
	r = e.do("PUT", "/nodes/pve1/qemu/101/config", form("onboot", "1", "tags", "pvectl;web"))
	require.JSONEq(t, `{"data":null}`, r.raw)
	cfg = e.do("GET", "/nodes/pve1/qemu/101/config", nil).body["data"].(map[string]any)
	require.Equal(t, json.Number("1"), cfg["onboot"])
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/config", form("cores", "4")))
	require.Contains(t, up, ":qmconfig:101:")

	// resize on 8.x: UPID; firewall/ipset/cloudinit: null
	up = e.upid(e.do("PUT", "/nodes/pve1/qemu/101/resize", form("disk", "scsi0", "size", "+8G")))
	require.Contains(t, up, ":resize:101:")
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	cfg = e.do("GET", "/nodes/pve1/qemu/101/config", nil).body["data"].(map[string]any)
	require.Equal(t, "local-lvm:vm-101-disk-0,size=40G", cfg["scsi0"])
	for _, c := range []struct {
		method, path string
		params       url.Values
	}{
		{"PUT", "/nodes/pve1/qemu/101/firewall/options", form("enable", "1", "policy_in", "DROP")},
		{"POST", "/nodes/pve1/qemu/101/firewall/ipset", form("name", "ipfilter-net0")},
		{"POST", "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0", form("cidr", "192.0.2.10")},
		{"PUT", "/nodes/pve1/qemu/101/cloudinit", nil},
	} {
		require.JSONEq(t, `{"data":null}`, e.do(c.method, c.path, c.params).raw, c.path)
	}
	fw := e.do("GET", "/nodes/pve1/qemu/101/firewall/options", nil).body["data"].(map[string]any)
	require.Equal(t, json.Number("1"), fw["enable"])
	require.Equal(t, "DROP", fw["policy_in"])
	require.NotContains(t, fw, "dhcp")
	ents := e.do("GET", "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0", nil).body["data"].([]any)
	require.Len(t, ents, 1)
	require.Equal(t, "192.0.2.10", ents[0].(map[string]any)["cidr"])
	r = e.do("POST", "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0", form("cidr", "192.0.2.10"))
	require.Equal(t, "400 Parameter verification failed.", r.status)
	require.Equal(t, map[string]any{"cidr": "address '192.0.2.10' already exists"}, r.body["errors"])
	r = e.do("DELETE", "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0", nil)
	require.Equal(t, "500 IPSet 'ipfilter-net0' is not empty", r.status)
	require.JSONEq(t, `{"data":null}`, e.do("DELETE", "/nodes/pve1/qemu/101/firewall/ipset/ipfilter-net0/192.0.2.10", nil).raw)

	// snapshots end with "current"
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/snapshot", form("snapname", "before-upgrade", "description", "x")))
	require.Contains(t, up, ":qmsnapshot:101:")
	e.waitTask(up)
	snaps := e.do("GET", "/nodes/pve1/qemu/101/snapshot", nil).body["data"].([]any)
	require.Len(t, snaps, 2)
	require.Equal(t, "before-upgrade", snaps[0].(map[string]any)["name"])
	last := snaps[1].(map[string]any)
	require.Equal(t, "current", last["name"])
	require.Equal(t, "You are here!", last["description"])
	require.Equal(t, json.Number("0"), last["running"])
	require.Equal(t, "before-upgrade", last["parent"])
	r = e.do("POST", "/nodes/pve1/qemu/101/snapshot", form("snapname", "current"))
	require.Equal(t, "500 unable to use snapshot name 'current' (reserved name)", r.status)

	// status-line errors with message in the body
	r = e.do("GET", "/nodes/pve1/qemu/555/config", nil)
	require.Equal(t, 500, r.code)
	require.Equal(t, "500 Configuration file 'nodes/pve1/qemu-server/555.conf' does not exist", r.status)
	require.JSONEq(t, `{"data":null,"message":"Configuration file 'nodes/pve1/qemu-server/555.conf' does not exist\n"}`, r.raw)
	r = e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101"))
	require.Equal(t, "500 unable to create VM 101: config file already exists", r.status)
	r = e.do("GET", "/nodes/pve1/foo", nil)
	require.Equal(t, "501 Method 'GET /nodes/pve1/foo' not implemented", r.status)

	// start: already running is a task error
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	require.Contains(t, up, ":qmstart:101:")
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	require.Equal(t, "VM 101 already running", e.waitTask(up)["exitstatus"])
	r = e.do("DELETE", "/nodes/pve1/qemu/101", nil)
	require.Equal(t, "500 VM 101 is running - destroy failed", r.status)
	up = e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/shutdown", form("forceStop", "1", "timeout", "60")))
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])

	// task log
	node := "pve1"
	lg := e.do("GET", "/nodes/"+node+"/tasks/"+up+"/log", nil)
	require.Equal(t, json.Number("1"), lg.body["total"])
	require.Equal(t, []any{map[string]any{"n": json.Number("1"), "t": "TASK OK"}}, lg.body["data"])

	// cluster resources
	res := e.do("GET", "/cluster/resources", form("type", "vm")).body["data"].([]any)
	require.Len(t, res, 2)
	vm101 := res[0].(map[string]any)
	require.Equal(t, "qemu/101", vm101["id"])
	require.Equal(t, json.Number("101"), vm101["vmid"])
	require.Equal(t, json.Number("0"), vm101["template"])
	require.Equal(t, "pvectl;web", vm101["tags"])
	require.Equal(t, json.Number("1"), res[1].(map[string]any)["template"])

	// delete with purge
	up = e.upid(e.do("DELETE", "/nodes/pve1/qemu/101", form("purge", "1", "destroy-unreferenced-disks", "1")))
	require.Contains(t, up, ":qmdestroy:101:")
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	_, ok := e.sim.VM(101)
	require.False(t, ok)
	require.Equal(t, "500 Configuration file 'nodes/pve1/qemu-server/101.conf' does not exist", e.do("GET", "/nodes/pve1/qemu/101/status/current", nil).status)

	// bad and unknown UPIDs
	r = e.do("GET", "/nodes/pve1/tasks/UPID:nope/status", nil)
	require.Equal(t, map[string]any{"upid": "unable to parse worker upid"}, r.body["errors"])
	r = e.do("GET", "/nodes/pve1/tasks/UPID:pve1:00000001:00000001:00000001:qmstart:100:root@pam:/status", nil)
	require.Equal(t, map[string]any{"upid": "no such task"}, r.body["errors"])

	e.sim.RequireNoRejections(t)
}

func TestTaskLifecycleAndLocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *pvesim.Cluster) {
		c.Durations.Tasks["qmclone"] = pvesim.Duration(30 * time.Second)
	})
	up := e.clone("120")
	vm, ok := e.sim.VM(120)
	require.True(t, ok)
	require.Equal(t, "clone", vm.Lock)

	// operations on the locked VM
	r := e.do("PUT", "/nodes/pve1/qemu/120/config", form("cores", "2"))
	require.Equal(t, "500 VM is locked (clone)", r.status)
	st := e.upid(e.do("POST", "/nodes/pve1/qemu/120/status/start", nil))
	e.sim.Advance(5 * time.Second)
	require.Equal(t, "VM is locked (clone)", e.taskStatus(st)["exitstatus"])
	// config of the template (shared-locked source) cannot be changed while the clone runs
	r = e.do("PUT", "/nodes/pve1/qemu/9000/config", form("description", "x"))
	require.Equal(t, "500 can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout", r.status)
	// resources show status unknown until pvestatd catches up
	res := e.do("GET", "/cluster/resources", form("type", "vm")).body["data"].([]any)
	require.Equal(t, "unknown", res[0].(map[string]any)["status"])
	require.Equal(t, "clone", res[0].(map[string]any)["lock"])

	e.sim.Advance(24 * time.Second)
	require.Equal(t, "running", e.taskStatus(up)["status"])
	e.sim.Advance(time.Second)
	ts := e.taskStatus(up)
	require.Equal(t, "stopped", ts["status"])
	require.Equal(t, "OK", ts["exitstatus"])
	vm, _ = e.sim.VM(120)
	require.Empty(t, vm.Lock)
	require.Equal(t, "stopped", vm.Status)
	res = e.do("GET", "/cluster/resources", form("type", "vm")).body["data"].([]any)
	require.Equal(t, "stopped", res[0].(map[string]any)["status"])

	// start → running after the task
	st = e.upid(e.do("POST", "/nodes/pve1/qemu/120/status/start", nil))
	vm, _ = e.sim.VM(120)
	require.Equal(t, "stopped", vm.Status)
	e.waitTask(st)
	vm, _ = e.sim.VM(120)
	require.Equal(t, "running", vm.Status)
	e.sim.RequireNoRejections(t)
}

// JSON type helpers for the raw bodies (decoded with UseNumber, so numbers
// are json.Number and strings stay strings).

func jsonInt(t *testing.T, v any, what string) int64 {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "%s must be a JSON number, got %T %#v", what, v, v)
	i, err := n.Int64()
	require.NoError(t, err, "%s must be an integer, got %s", what, n)
	return i
}

func jsonNum(t *testing.T, v any, what string) float64 {
	t.Helper()
	n, ok := v.(json.Number)
	require.True(t, ok, "%s must be a JSON number, got %T %#v", what, v, v)
	f, err := n.Float64()
	require.NoError(t, err, what)
	return f
}

func jsonStr(t *testing.T, v any, what string) string {
	t.Helper()
	s, ok := v.(string)
	require.True(t, ok, "%s must be a JSON string, got %T %#v", what, v, v)
	return s
}

// jsonBool01 is a PVE boolean as Perl sends it: the integer 0 or 1.
func jsonBool01(t *testing.T, v any, what string) bool {
	t.Helper()
	i := jsonInt(t, v, what)
	require.Contains(t, []int64{0, 1}, i, "%s must be 0 or 1", what)
	return i == 1
}

func jsonObj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s must be a JSON object, got %T %#v", what, v, v)
	return m
}

func jsonArr(t *testing.T, v any, what string) []any {
	t.Helper()
	a, ok := v.([]any)
	require.True(t, ok, "%s must be a JSON array, got %T %#v", what, v, v)
	return a
}

// TestGoldenShapesNodeStorageRRDTasks pins the JSON types of node status,
// storage status, a backup's storage content entry, rrddata and the node
// task list as real PVE sends them (shared/pve-api/notes.md §1 and the
// 8.4.5/9.2.3 return schemas), read from the raw HTTP body.
func TestGoldenShapesNodeStorageRRDTasks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	// ---- GET /nodes/{node}/status ----
	r := e.do("GET", "/nodes/pve1/status", nil)
	require.Equal(t, 200, r.code, r.status)
	ns := jsonObj(t, r.body["data"], "node status")
	// loadavg: array of three *strings* (notes.md; schema items type string).
	la := jsonArr(t, ns["loadavg"], "loadavg")
	require.Len(t, la, 3)
	for i, v := range la {
		_, err := strconv.ParseFloat(jsonStr(t, v, fmt.Sprintf("loadavg[%d]", i)), 64)
		require.NoError(t, err)
	}
	// cpuinfo: cpus/cores/sockets integers (schema), model string; mhz and hvm
	// are strings (notes.md: read from /proc/cpuinfo as text).
	ci := jsonObj(t, ns["cpuinfo"], "cpuinfo")
	require.Equal(t, int64(16), jsonInt(t, ci["cpus"], "cpuinfo.cpus"))
	require.Positive(t, jsonInt(t, ci["cores"], "cpuinfo.cores"))
	require.Positive(t, jsonInt(t, ci["sockets"], "cpuinfo.sockets"))
	jsonStr(t, ci["model"], "cpuinfo.model")
	_, err := strconv.ParseFloat(jsonStr(t, ci["mhz"], "cpuinfo.mhz"), 64)
	require.NoError(t, err)
	jsonStr(t, ci["hvm"], "cpuinfo.hvm")
	jsonInt(t, ci["user_hz"], "cpuinfo.user_hz")
	jsonNum(t, ns["cpu"], "cpu")
	jsonNum(t, ns["wait"], "wait")
	jsonInt(t, ns["uptime"], "uptime")
	mem := jsonObj(t, ns["memory"], "memory")
	total, used, free := jsonInt(t, mem["total"], "memory.total"), jsonInt(t, mem["used"], "memory.used"), jsonInt(t, mem["free"], "memory.free")
	require.Equal(t, int64(64<<30), total)
	require.Equal(t, total, used+free)
	for _, k := range []string{"total", "used", "free"} {
		jsonInt(t, jsonObj(t, ns["swap"], "swap")[k], "swap."+k)
	}
	for _, k := range []string{"total", "used", "avail", "free"} {
		jsonInt(t, jsonObj(t, ns["rootfs"], "rootfs")[k], "rootfs."+k)
	}
	require.True(t, strings.HasPrefix(jsonStr(t, ns["pveversion"], "pveversion"), "pve-manager/8.4.5/"))
	jsonStr(t, ns["kversion"], "kversion")
	ck := jsonObj(t, ns["current-kernel"], "current-kernel")
	for _, k := range []string{"sysname", "release", "machine", "version"} {
		jsonStr(t, ck[k], "current-kernel."+k)
	}
	bi := jsonObj(t, ns["boot-info"], "boot-info")
	require.Contains(t, []string{"efi", "legacy-bios"}, jsonStr(t, bi["mode"], "boot-info.mode"))
	if v, ok := bi["secureboot"]; ok {
		jsonBool01(t, v, "boot-info.secureboot")
	}

	// ---- GET /nodes/{node}/storage/{storage}/status ----
	// pve-storage read_status returns storage_info's entry: type, content
	// (comma list), active/enabled/shared 0|1, total/used/avail integers; no
	// "storage" key (that is added only by the storage index).
	r = e.do("GET", "/nodes/pve1/storage/local-lvm/status", nil)
	require.Equal(t, 200, r.code, r.status)
	ss := jsonObj(t, r.body["data"], "storage status")
	require.Equal(t, "lvmthin", jsonStr(t, ss["type"], "type"))
	require.ElementsMatch(t, []string{"images", "rootdir"}, strings.Split(jsonStr(t, ss["content"], "content"), ","))
	require.True(t, jsonBool01(t, ss["active"], "active"))
	require.True(t, jsonBool01(t, ss["enabled"], "enabled"))
	require.False(t, jsonBool01(t, ss["shared"], "shared"))
	stTotal, stUsed, stAvail := jsonInt(t, ss["total"], "total"), jsonInt(t, ss["used"], "used"), jsonInt(t, ss["avail"], "avail")
	require.Equal(t, int64(500<<30), stTotal)
	require.Equal(t, stTotal, stUsed+stAvail)
	require.NotContains(t, ss, "storage")

	// ---- a backup entry of GET /nodes/{node}/storage/{storage}/content ----
	e.waitTask(e.clone("101", "name", "web-1"))
	up := e.upid(e.do("POST", "/nodes/pve1/vzdump", form("vmid", "101", "storage", "local", "compress", "zstd",
		"notes-template", "{{guestname}}", "protected", "1")))
	require.Contains(t, up, ":vzdump:101:")
	require.Equal(t, "OK", e.waitTask(up)["exitstatus"])
	r = e.do("GET", "/nodes/pve1/storage/local/content", form("content", "backup", "vmid", "101"))
	require.Equal(t, 200, r.code, r.status)
	vols := jsonArr(t, r.body["data"], "content")
	require.Len(t, vols, 1)
	bk := jsonObj(t, vols[0], "backup entry")
	require.Regexp(t, `^local:backup/vzdump-qemu-101-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2}\.vma\.zst$`, jsonStr(t, bk["volid"], "volid"))
	require.Equal(t, "vma.zst", jsonStr(t, bk["format"], "format"))
	require.Equal(t, "backup", jsonStr(t, bk["content"], "content"))
	require.Equal(t, "qemu", jsonStr(t, bk["subtype"], "subtype"))
	require.Equal(t, int64(101), jsonInt(t, bk["vmid"], "vmid"), "vmid is a number, not a string")
	ctime := jsonInt(t, bk["ctime"], "ctime")
	require.GreaterOrEqual(t, ctime, pvesim.DefaultStart.Unix())
	require.LessOrEqual(t, ctime, e.sim.Clock().Now().Unix())
	require.Positive(t, jsonInt(t, bk["size"], "size"))
	require.Equal(t, "web-1", jsonStr(t, bk["notes"], "notes"))
	require.True(t, jsonBool01(t, bk["protected"], "protected"))

	// ---- GET /nodes/{node}/qemu/{vmid}/rrddata ----
	// An array of objects: "time" always, every other field a number; values
	// RRD does not have (before the VM existed) are left out, never strings.
	e.sim.Advance(20 * time.Minute)
	e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))
	e.sim.SetNetRate(101, 1000, 2000)
	e.sim.Advance(10 * time.Minute)
	r = e.do("GET", "/nodes/pve1/qemu/101/rrddata", form("timeframe", "hour", "cf", "AVERAGE"))
	require.Equal(t, 200, r.code, r.status)
	pts := jsonArr(t, r.body["data"], "rrddata")
	require.Len(t, pts, 70)
	known := map[string]bool{"time": true, "cpu": true, "maxcpu": true, "mem": true, "maxmem": true, "disk": true, "maxdisk": true,
		"diskread": true, "diskwrite": true, "netin": true, "netout": true}
	var prev int64
	sparse, full := 0, 0
	for i, p := range pts {
		pt := jsonObj(t, p, fmt.Sprintf("rrddata[%d]", i))
		ts := jsonInt(t, pt["time"], "time")
		if i > 0 {
			require.Equal(t, int64(60), ts-prev, "hour timeframe: one sample a minute")
		}
		prev = ts
		for k, v := range pt {
			require.True(t, known[k], "unexpected rrd field %q", k)
			if v != nil { // absent or null: no data
				jsonNum(t, v, fmt.Sprintf("rrddata[%d].%s", i, k))
			}
		}
		if _, ok := pt["cpu"]; ok {
			full++
		} else {
			sparse++
		}
	}
	require.Positive(t, sparse, "samples before the VM existed carry only time")
	require.Positive(t, full)
	lastPt := jsonObj(t, pts[len(pts)-1], "last sample")
	require.InDelta(t, 1000, jsonNum(t, lastPt["netin"], "netin"), 1)
	require.InDelta(t, 2000, jsonNum(t, lastPt["netout"], "netout"), 1)
	jsonInt(t, lastPt["maxmem"], "maxmem")

	// ---- GET /nodes/{node}/tasks ----
	// Finished tasks: upid, numeric pid/pstart/starttime/endtime, status is
	// the exit text; token tasks have user and tokenid split.
	failed := e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	require.Equal(t, "VM 101 already running", e.waitTask(failed)["exitstatus"])
	r = e.do("GET", "/nodes/pve1/tasks", nil)
	require.Equal(t, 200, r.code, r.status)
	list := jsonArr(t, r.body["data"], "tasks")
	require.GreaterOrEqual(t, len(list), 4) // qmclone, vzdump, qmstart, qmstart
	seen := map[string]map[string]any{}
	for i, v := range list {
		te := jsonObj(t, v, fmt.Sprintf("tasks[%d]", i))
		upid := jsonStr(t, te["upid"], "upid")
		m := upidRe.FindStringSubmatch(upid)
		require.NotNil(t, m, "upid %q", upid)
		start := jsonInt(t, te["starttime"], "starttime")
		hexStart, err := strconv.ParseInt(m[5], 16, 64)
		require.NoError(t, err)
		require.Equal(t, hexStart, start, "starttime is the UPID's")
		require.GreaterOrEqual(t, jsonInt(t, te["endtime"], "endtime"), start)
		jsonInt(t, te["pid"], "pid")
		jsonInt(t, te["pstart"], "pstart")
		require.Equal(t, "pve1", jsonStr(t, te["node"], "node"))
		require.Equal(t, m[6], jsonStr(t, te["type"], "type"))
		require.Equal(t, m[7], jsonStr(t, te["id"], "id"))
		require.Equal(t, "pvectl@pve", jsonStr(t, te["user"], "user"))
		require.Equal(t, "ci", jsonStr(t, te["tokenid"], "tokenid"))
		jsonStr(t, te["status"], "status")
		seen[upid] = te
	}
	require.Equal(t, "OK", seen[up]["status"])
	require.Equal(t, "VM 101 already running", seen[failed]["status"])
	r = e.do("GET", "/nodes/pve1/tasks", form("errors", "1"))
	errList := jsonArr(t, r.body["data"], "tasks?errors=1")
	require.Len(t, errList, 1)
	require.Equal(t, failed, jsonObj(t, errList[0], "error task")["upid"])

	e.sim.RequireNoRejections(t)
}

// Real PVE lists a task that is still running with status "RUNNING"
// (pve-manager PVE/API2/Tasks.pm node_tasks: `$task->{status} = 'RUNNING'
// if !$task->{status}` for the active list; notes.md §2).
func TestTaskListRunningTaskStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	up := e.clone("101")
	require.Equal(t, "running", e.taskStatus(up)["status"])
	for _, source := range []string{"active", "all"} {
		r := e.do("GET", "/nodes/pve1/tasks", form("source", source))
		require.Equal(t, 200, r.code, r.status)
		list := jsonArr(t, r.body["data"], "tasks")
		require.Len(t, list, 1, "source=%s", source)
		te := jsonObj(t, list[0], "running task")
		require.Equal(t, up, te["upid"])
		require.NotContains(t, te, "endtime")
		require.Equal(t, "RUNNING", te["status"], "source=%s: a running task's status in the task list", source)
	}
	e.sim.RequireNoRejections(t)
}

// Real PVE (pve-storage PVE/API2/Storage/Status.pm read_status) answers an
// unknown storage with raise_param_exc({storage => "No such storage."}):
// 400 Parameter verification failed. with errors.storage.
func TestStorageStatusUnknownStorage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("GET", "/nodes/pve1/storage/nosuch/status", nil)
	require.Equal(t, "400 Parameter verification failed.", r.status, r.raw)
	require.Equal(t, map[string]any{"storage": "No such storage."}, r.body["errors"])
	require.Equal(t, "Parameter verification failed.\n", r.body["message"])
}

// PVE's cross-parameter checks ("requires") are part of parameter
// verification: a request that fails them is the client's bug, so pvesim
// records it as a schema rejection and RequireNoRejections catches it.
func TestRequiresIsRecordedAsRejection(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path string
		params             url.Values
		errors             map[string]string
	}{
		{"vzdump protected without storage", "POST", "/nodes/pve1/vzdump", form("vmid", "9000", "protected", "1"),
			map[string]string{"protected": "missing property - 'protected' requires 'storage'"}},
		{"create force without archive", "POST", "/nodes/pve1/qemu", form("vmid", "150", "force", "1"),
			map[string]string{"force": "missing property - 'force' requires 'archive'"}},
		{"config force without delete", "PUT", "/nodes/pve1/qemu/9000/config", form("force", "1", "memory", "2048"),
			map[string]string{"force": "missing property - 'delete' is required when using 'force'"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r := e.do(tc.method, tc.path, tc.params)
			require.Equal(t, "400 Parameter verification failed.", r.status, r.raw)
			got := map[string]string{}
			for k, v := range r.body["errors"].(map[string]any) {
				got[k] = v.(string)
			}
			require.Equal(t, tc.errors, got)
			rej := e.sim.Rejected()
			require.Len(t, rej, 1)
			require.Equal(t, tc.errors, rej[0].Errors)
		})
	}
}
