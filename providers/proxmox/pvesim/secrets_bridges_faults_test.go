package pvesim_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	proxmox "github.com/luthermonson/go-proxmox"
	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
)

// Real public keys (ssh-keygen output; public keys are not secrets).
const (
	testKeyEd25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL6j+kE1W98w6oNjS4+E3DHwbcBtPaDeVZ388oOL31ke user@host"
	testKeyRSA     = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCkItwh9VN9jnzhdUcYSE0TfxJh2mcnm2v8XPjvxvO+tPsHgZu+7QDlI1NoEARTqN/UB3jew+ynnPDMXTrfFSoPBPtaSNs6qhmc/Opu1FZU/iKdGPhqZi07+eA/rGmYCO0gk9H4YOK2jFVWDaurCSNP1EKQZo0PjirWXBwNC8e44w== admin@example"
	testKeyECDSA   = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBMHHSXhy1g20MSTdBAM+B5kAKyAhe+T7cL2V83BFozQihxxbN6XsqSmmgqWA0639mC+DnCaPfFLzmG4k6qMXURk= e@x"
)

// pveEncode percent-encodes like PVE wants sshkeys (%20, never "+").
func pveEncode(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

func (e *env) control(path string) string {
	e.t.Helper()
	res, err := http.Get(strings.TrimSuffix(e.api, "/api2/json") + "/_sim" + path)
	require.NoError(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	return string(b)
}

// qemu-server crypts cipassword before storing it and GET config / GET
// pending show "**********" for it; pvesim's dumps never show it either.
func TestCIPasswordMasked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const pw = "s3cret-Passw0rd"
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/9000/config", form("cipassword", pw, "ciuser", "admin")).code)

	cfg := e.config("9000")
	require.Equal(t, "**********", cfg["cipassword"])
	require.Equal(t, "admin", cfg["ciuser"])
	require.NotEmpty(t, cfg["digest"])
	r := e.do("GET", "/nodes/pve1/qemu/9000/pending", nil)
	require.Equal(t, 200, r.code, r.status)
	found := false
	for _, it := range r.body["data"].([]any) {
		if m := it.(map[string]any); m["key"] == "cipassword" {
			found = true
			require.Equal(t, "**********", m["value"])
		}
	}
	require.True(t, found)
	require.NotContains(t, r.raw, pw)

	// POST config (worker) too; the task log hides it as PVE's does
	upid := e.upid(e.do("POST", "/nodes/pve1/qemu/9000/config", form("cipassword", pw+"2")))
	e.waitTask(upid)
	require.Equal(t, "**********", e.config("9000")["cipassword"])
	require.NotContains(t, strings.Join(e.taskLog(upid), "\n"), pw)

	vm, ok := e.sim.VM(9000)
	require.True(t, ok)
	require.Equal(t, "**********", vm.Config["cipassword"])
	require.True(t, e.sim.CheckCIPassword(9000, pw+"2"))
	require.False(t, e.sim.CheckCIPassword(9000, pw))
	for _, path := range []string{"/state", "/requests", "/requests?rejected=1"} {
		require.NotContains(t, e.control(path), pw, path)
	}
	for _, q := range e.sim.Requests() {
		if v, ok := q.Params["cipassword"]; ok {
			require.Equal(t, "<hidden>", v)
		}
	}

	// the clone carries the (crypted) password; still masked
	upid = e.clone("101")
	e.waitTask(upid)
	require.Equal(t, "**********", e.config("101")["cipassword"])
	require.True(t, e.sim.CheckCIPassword(101, pw+"2"))

	// a value that already is a crypt string is stored as it is
	const crypted = "$5$abcdefgh$0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/101/config", form("cipassword", crypted)).code)
	require.Equal(t, "**********", e.config("101")["cipassword"])
	require.False(t, e.sim.CheckCIPassword(101, ""))
	e.sim.RequireNoRejections(t)
}

// sshkeys: the schema wants it URL-encoded (400 otherwise); qemu-server
// then unescapes it and runs every non-blank line through ssh-keygen -l,
// failing the call with 500 "SSH public key validation error".
func TestSSHKeysValidated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := pveEncode(testKeyEd25519 + "\n" + testKeyRSA + "\n\n" + testKeyECDSA + "\n")
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/9000/config", form("sshkeys", good)).code)
	require.Equal(t, good, e.config("9000")["sshkeys"])
	optioned := pveEncode(`from="10.0.0.1" ` + testKeyEd25519)
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/9000/config", form("sshkeys", optioned)).code)

	for name, keys := range map[string]string{
		"placeholder":       "ssh-ed25519 AAAAC3Nza user@host",
		"bad base64 length": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyExampleKeyExampleKeyExample admin@example",
		"truncated rsa":     "ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB user@host",
		"one bad of two":    testKeyEd25519 + "\nssh-ed25519 AAAA+/= a@b",
		"comment only":      "# no key here",
		"not a key":         "hello",
	} {
		for _, method := range []string{"PUT", "POST"} {
			r := e.do(method, "/nodes/pve1/qemu/9000/config", form("sshkeys", pveEncode(keys), "description", "x"))
			require.Equal(t, "500 SSH public key validation error", r.status, "%s %s", name, method)
			require.Nil(t, r.body["data"])
			require.Equal(t, "SSH public key validation error\n", r.body["message"])
		}
	}
	require.Equal(t, optioned, e.config("9000")["sshkeys"])
	require.Nil(t, e.config("9000")["description"], "a failed call changes nothing")
	for _, ts := range e.sim.Tasks() {
		require.NotEqual(t, "qmconfig", ts.Type, "no worker for a rejected POST")
	}

	// not percent-encoded: the schema's urlencoded format (400)
	r := e.do("PUT", "/nodes/pve1/qemu/9000/config", form("sshkeys", testKeyEd25519))
	require.Equal(t, "400 Parameter verification failed.", r.status)
	require.Contains(t, r.body["errors"].(map[string]any)["sshkeys"], "invalid format - invalid urlencoded string")

	// create checks the keys too, before creating anything
	r = e.do("POST", "/nodes/pve1/qemu", form("vmid", "150", "sshkeys", pveEncode("ssh-ed25519 AAAA")))
	require.Equal(t, "500 SSH public key validation error", r.status)
	_, exists := e.sim.VM(150)
	require.False(t, exists)
	e.upid(e.do("POST", "/nodes/pve1/qemu", form("vmid", "150", "sshkeys", pveEncode(testKeyECDSA))))
}

func bridgeCluster(bridges ...string) func(c *pvesim.Cluster) {
	return func(c *pvesim.Cluster) {
		for i := range c.Nodes {
			c.Nodes[i].Bridges = bridges
		}
	}
}

// A NIC on a bridge the node does not have: the config is accepted (PVE
// checks bridges only when QEMU starts), the start task fails as PVE's does
// (pve-bridge dies in tap_plug, QEMU exits).
func TestStartFailsOnMissingBridge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, bridgeCluster("vmbr0"))
	e.waitTask(e.clone("101"))
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/101/config", form("net1", "virtio=BC:24:11:00:01:01,bridge=vmbr9,firewall=1", "net2", "e1000,bridge=vmbr7")).code)

	upid := e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	st := e.waitTask(upid)
	require.Equal(t, "start failed: QEMU exited with code 1", st["exitstatus"])
	log := e.taskLog(upid)
	require.Contains(t, log, "bridge 'vmbr9' does not exist")
	require.Contains(t, log, "kvm: -netdev type=tap,id=net1,ifname=tap101i1,script=/usr/libexec/qemu-server/pve-bridge,downscript=/usr/libexec/qemu-server/pve-bridgedown,vhost=on: network script /usr/libexec/qemu-server/pve-bridge failed with status 512")
	require.Equal(t, "TASK ERROR: start failed: QEMU exited with code 1", log[len(log)-1])
	vm, _ := e.sim.VM(101)
	require.Equal(t, "stopped", vm.Status)

	// fixed: vmbr0 exists; net2 (no vhost for e1000) is next
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/101/config", form("net1", "virtio=BC:24:11:00:01:01,bridge=vmbr0")).code)
	upid = e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil))
	require.Equal(t, "start failed: QEMU exited with code 1", e.waitTask(upid)["exitstatus"])
	require.Contains(t, e.taskLog(upid), "kvm: -netdev type=tap,id=net2,ifname=tap101i2,script=/usr/libexec/qemu-server/pve-bridge,downscript=/usr/libexec/qemu-server/pve-bridgedown: network script /usr/libexec/qemu-server/pve-bridge failed with status 512")

	// a NIC without bridge is user-mode networking: no tap, no check
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/101/config", form("net2", "e1000")).code)
	require.Equal(t, "OK", e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))["exitstatus"])
	vm, _ = e.sim.VM(101)
	require.Equal(t, "running", vm.Status)

	// create with start=1 hands the start to vm_start: the create is OK,
	// the guest stays stopped
	st = e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu", form("vmid", "150", "net0", "virtio,bridge=vmbr1", "start", "1"))))
	require.Equal(t, "OK", st["exitstatus"])
	vm, _ = e.sim.VM(150)
	require.Equal(t, "stopped", vm.Status)

	require.Equal(t, []string{"vmbr0"}, e.sim.Dump().Nodes[0].Bridges)
	e.sim.RequireNoRejections(t)
}

// A cluster file without bridges gets DefaultBridges (vmbr0, vmbr1).
func TestDefaultBridges(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"vmbr0", "vmbr1"}, pvesim.DefaultBridges())
	for _, n := range pvesim.DefaultCluster().Nodes {
		require.Equal(t, pvesim.DefaultBridges(), n.Bridges)
	}
	e := newEnv(t, bridgeCluster())
	require.Equal(t, []string{"vmbr0", "vmbr1"}, e.sim.Dump().Nodes[1].Bridges)
	e.waitTask(e.clone("101"))
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/101/config", form("net0", "virtio,bridge=vmbr1")).code)
	require.Equal(t, "OK", e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))["exitstatus"])
	e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/stop", nil)))
	require.Equal(t, 200, e.do("PUT", "/nodes/pve1/qemu/101/config", form("net0", "virtio,bridge=vmbr2")).code)
	require.Equal(t, "start failed: QEMU exited with code 1", e.waitTask(e.upid(e.do("POST", "/nodes/pve1/qemu/101/status/start", nil)))["exitstatus"])

	c := pvesim.DefaultCluster()
	c.Nodes[0].Bridges = []string{"vmbr 0"}
	_, err := pvesim.New(c)
	require.ErrorContains(t, err, `invalid bridge name "vmbr 0"`)
	c, err = pvesim.ParseCluster([]byte("nodes:\n  - name: pve1\n    bridges: [vmbr0, vmbr5]\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"vmbr0", "vmbr5"}, c.Nodes[0].Bridges)
}

// Injected 400s look like PVE's parameter errors: status line
// "Parameter verification failed.", body {"errors":{…},"data":null}.
func TestFault400Shape(t *testing.T) {
	t.Parallel()
	const clone = "POST /nodes/{node}/qemu/{vmid}/clone"
	requireParamErr := func(t *testing.T, r resp, errs map[string]any, legacy bool) {
		t.Helper()
		require.Equal(t, "400 Parameter verification failed.", r.status)
		require.Contains(t, r.body, "data")
		require.Nil(t, r.body["data"])
		require.Equal(t, errs, r.body["errors"])
		if legacy {
			require.NotContains(t, r.body, "message")
		} else {
			require.Equal(t, "Parameter verification failed.\n", r.body["message"])
		}
	}
	e := newEnv(t)
	e.sim.FailNext(pvesim.FailNext{Endpoint: clone, Status: 400, Errors: map[string]string{"newid": "VM 101 already exists"}})
	requireParamErr(t, e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101")), map[string]any{"newid": "VM 101 already exists"}, false)

	// without Errors: Message for the first parameter the call sent
	e.sim.FailNext(pvesim.FailNext{Endpoint: clone, Status: 400, Message: "invalid format - value does not look like a valid VM ID"})
	requireParamErr(t, e.do("POST", "/nodes/pve1/qemu/9000/clone", form("name", "x", "newid", "101")), map[string]any{"name": "invalid format - value does not look like a valid VM ID"}, false)
	// …else the last path variable, with the default message
	e.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/config", Status: 400})
	requireParamErr(t, e.do("GET", "/nodes/pve1/qemu/9000/config", nil), map[string]any{"vmid": "value does not match the regex pattern"}, false)
	// error rates and after-apply faults too
	e.sim.SetErrorRate(pvesim.ErrorRate{Endpoint: "GET /cluster/nextid", Rate: 1, Status: 400, Errors: map[string]string{"vmid": "VM 100 already exists"}})
	requireParamErr(t, e.do("GET", "/cluster/nextid", nil), map[string]any{"vmid": "VM 100 already exists"}, false)
	e.sim.SetErrorRate(pvesim.ErrorRate{Endpoint: "GET /cluster/nextid", Rate: 0})
	e.sim.FailNext(pvesim.FailNext{Endpoint: "PUT /nodes/{node}/qemu/{vmid}/config", Status: 400, AfterApply: true})
	requireParamErr(t, e.do("PUT", "/nodes/pve1/qemu/9000/config", form("description", "d")), map[string]any{"description": "value does not match the regex pattern"}, false)
	// through the control endpoint
	res, err := http.Post(strings.TrimSuffix(e.api, "/api2/json")+"/_sim/faults/fail-next", "application/json",
		strings.NewReader(`{"endpoint":"`+clone+`","status":400,"errors":{"target":"target is local node."}}`))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	requireParamErr(t, e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101")), map[string]any{"target": "target is local node."}, false)
	// recorded with its errors, not as a schema rejection
	reqs := e.sim.Requests()
	require.Equal(t, map[string]string{"target": "target is local node."}, reqs[len(reqs)-1].Errors)
	require.Equal(t, "Parameter verification failed.", reqs[len(reqs)-1].Message)
	e.sim.RequireNoRejections(t)

	// go-proxmox reads it as a real parameter error
	sim, api, id, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
	sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/status/current", Status: 400, Errors: map[string]string{"vmid": "value must have a minimum value of 100"}})
	node, err := proxmox.NewClient(api, proxmox.WithAPIToken(id, secret)).Node(context.Background(), "pve1")
	require.NoError(t, err)
	_, err = node.VirtualMachine(context.Background(), 9000)
	require.EqualError(t, err, `bad request: 400 Parameter verification failed. - {"vmid":"value must have a minimum value of 100"}`)

	// legacy body: no "message", errors still there
	e = newEnv(t, func(c *pvesim.Cluster) { c.Version = "7.4" })
	e.sim.FailNext(pvesim.FailNext{Endpoint: clone, Status: 400, Errors: map[string]string{"newid": "VM 101 already exists"}})
	requireParamErr(t, e.do("POST", "/nodes/pve1/qemu/9000/clone", form("newid", "101")), map[string]any{"newid": "VM 101 already exists"}, true)
}
