package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests drive the real pvesim binary the way scripts and demos do:
// faults are injected over the /_sim control endpoint with plain HTTP, and
// the PVE API (with the printed token) must answer accordingly.

const (
	cloneEP     = "POST /nodes/{node}/qemu/{vmid}/clone"
	connRefused = "595 Errors during connection establishment, proxy handshake: Connection refused"
)

// simProc is one running pvesim binary.
type simProc struct {
	t       *testing.T
	api     string // .../api2/json
	control string // .../_sim
	auth    string // Authorization header value
	client  *http.Client
}

type apiResp struct {
	code   int
	status string // e.g. "500 VM is locked (backup)"
	raw    string
	body   map[string]any
}

func buildPvesim(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pvesim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	return bin
}

// startPvesim starts bin with a manual clock on a free port and reads the
// lines it prints.
func startPvesim(t *testing.T, bin string) *simProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, "--listen", "127.0.0.1:0", "--cluster", "../../testdata/pvesim/cluster.yaml", "--clock", "manual")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	vals := map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(vals) < 4 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vals[k] = v
	}
	require.Len(t, vals, 4, "pvesim printed %v; stderr: %s", vals, stderr.String())
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return &simProc{
		t: t, api: vals["PVE_API_URL"], control: vals["PVESIM_CONTROL_URL"],
		auth:   "PVEAPIToken=" + vals["PVE_TOKEN_ID"] + "=" + vals["PVE_TOKEN_SECRET"],
		client: &http.Client{Timeout: 30 * time.Second},
	}
}

// call sends an API request (form-encoded parameters; GET/DELETE in the query).
func (s *simProc) call(method, path string, params url.Values) apiResp {
	s.t.Helper()
	u := s.api + path
	var body io.Reader
	if method == http.MethodGet || method == http.MethodDelete {
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
	} else if params != nil {
		body = strings.NewReader(params.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(s.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Authorization", s.auth)
	return s.send(req)
}

func (s *simProc) send(req *http.Request) apiResp {
	s.t.Helper()
	res, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	r := apiResp{code: res.StatusCode, status: res.Status, raw: string(raw)}
	if len(raw) > 0 {
		require.NoError(s.t, json.Unmarshal(raw, &r.body), "body %q", raw)
	}
	return r
}

// ctl calls a control endpoint with a JSON body ("" = none) and decodes the
// JSON answer into out (if not nil); it returns the status code.
func (s *simProc) ctl(method, path, body string, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.control+path, rd)
	require.NoError(s.t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	require.Equal(s.t, "application/json", res.Header.Get("Content-Type"), "%s %s: %s", method, path, raw)
	if out != nil {
		require.NoError(s.t, json.Unmarshal(raw, out), "%s %s: %s", method, path, raw)
	}
	return res.StatusCode
}

func (s *simProc) mustCtl(method, path, body string) {
	s.t.Helper()
	var out map[string]any
	require.Equal(s.t, 200, s.ctl(method, path, body, &out), "%s %s %s: %v", method, path, body, out)
}

func (s *simProc) advance(d string) {
	s.t.Helper()
	s.mustCtl("POST", "/clock/advance", `{"duration":"`+d+`"}`)
}

func (s *simProc) upid(r apiResp) string {
	s.t.Helper()
	require.Equal(s.t, 200, r.code, "%s %s", r.status, r.raw)
	u, ok := r.body["data"].(string)
	require.True(s.t, ok, "data is not a UPID: %s", r.raw)
	require.True(s.t, strings.HasPrefix(u, "UPID:"), u)
	return u
}

func (s *simProc) taskStatus(upid string) map[string]any {
	s.t.Helper()
	node := strings.Split(upid, ":")[1]
	r := s.call("GET", "/nodes/"+node+"/tasks/"+url.PathEscape(upid)+"/status", nil)
	require.Equal(s.t, 200, r.code, r.status)
	return r.body["data"].(map[string]any)
}

// finish advances the manual clock past any task duration and returns the
// task's final status.
func (s *simProc) finish(upid string) map[string]any {
	s.t.Helper()
	s.advance("1m")
	st := s.taskStatus(upid)
	require.Equal(s.t, "stopped", st["status"], "%v", st)
	return st
}

func (s *simProc) clone(newid string) string {
	s.t.Helper()
	return s.upid(s.call("POST", "/nodes/pve1/qemu/9000/clone", url.Values{"newid": {newid}}))
}

func (s *simProc) faults() map[string]any {
	s.t.Helper()
	var f map[string]any
	require.Equal(s.t, 200, s.ctl("GET", "/faults", "", &f))
	return f
}

func TestBinaryFaultsOverControlEndpoint(t *testing.T) {
	t.Parallel()
	bin := buildPvesim(t)

	t.Run("fail-next with a PVE message", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		const msg = "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout"
		s.mustCtl("POST", "/faults/fail-next",
			`{"endpoint":"GET /nodes/{node}/qemu/{vmid}/config","count":2,"status":500,"message":"`+msg+`"}`)
		for range 2 {
			r := s.call("GET", "/nodes/pve1/qemu/9000/config", nil)
			require.Equal(t, 500, r.code)
			require.Equal(t, "500 "+msg, r.status, "the message is in the status line")
			require.Equal(t, map[string]any{"data": nil, "message": msg + "\n"}, r.body)
		}
		r := s.call("GET", "/nodes/pve1/qemu/9000/config", nil)
		require.Equal(t, 200, r.code, "count 2: the third call works: %s", r.status)
		require.Equal(t, "debian-12-template", r.body["data"].(map[string]any)["name"])

		// Other endpoints are not affected; an unknown endpoint name is refused.
		s.mustCtl("POST", "/faults/fail-next", `{"endpoint":"`+cloneEP+`","status":596}`)
		require.Equal(t, 200, s.call("GET", "/cluster/nextid", nil).code)
		r = s.call("POST", "/nodes/pve1/qemu/9000/clone", url.Values{"newid": {"101"}})
		require.Equal(t, "596 Connection timed out", r.status, "no message: the default for the status")
		var e map[string]any
		require.Equal(t, 400, s.ctl("POST", "/faults/fail-next", `{"endpoint":"POST /nope"}`, &e))
		require.Contains(t, e["error"], `unknown endpoint "POST /nope"`)
		require.Equal(t, 400, s.ctl("POST", "/faults/fail-next", `{"endpoint":"`+cloneEP+`","bogus":1}`, &e))
		require.Contains(t, e["error"], "bad JSON body")
	})

	t.Run("error rate 1", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		s.mustCtl("POST", "/faults/error-rate", `{"endpoint":"GET /cluster/resources","rate":1,"status":503}`)
		for range 3 {
			require.Equal(t, "503 Service Unavailable", s.call("GET", "/cluster/resources", nil).status)
		}
		require.Equal(t, 200, s.call("GET", "/version", nil).code)
		s.mustCtl("POST", "/faults/error-rate", `{"endpoint":"GET /cluster/resources","rate":0}`)
		require.Equal(t, 200, s.call("GET", "/cluster/resources", nil).code)
	})

	t.Run("task fault", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		const exit = "clone failed: can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"
		s.mustCtl("POST", "/faults/task", `{"type":"qmclone","exitstatus":"`+exit+`","count":1}`)
		// A task of another type is not affected.
		st := s.finish(s.upid(s.call("POST", "/nodes/pve1/qemu/9000/config", url.Values{"description": {"x"}})))
		require.Equal(t, "OK", st["exitstatus"])

		up := s.clone("101")
		st = s.finish(up)
		require.Equal(t, exit, st["exitstatus"])
		lg := s.call("GET", "/nodes/pve1/tasks/"+url.PathEscape(up)+"/log", nil)
		require.Equal(t, 200, lg.code, lg.status)
		lines := lg.body["data"].([]any)
		require.Equal(t, "TASK ERROR: "+exit, lines[len(lines)-1].(map[string]any)["t"])
		require.Equal(t, 500, s.call("GET", "/nodes/pve1/qemu/101/config", nil).code, "the failed clone left no VM")

		require.Equal(t, "OK", s.finish(s.clone("102"))["exitstatus"], "count 1: the next clone works")

		// WARNINGS: n is a success with the work done.
		s.mustCtl("POST", "/faults/task", `{"type":"qmstart","vmid":102,"exitstatus":"WARNINGS: 2"}`)
		st = s.finish(s.upid(s.call("POST", "/nodes/pve1/qemu/102/status/start", nil)))
		require.Equal(t, "WARNINGS: 2", st["exitstatus"])
		cur := s.call("GET", "/nodes/pve1/qemu/102/status/current", nil)
		require.Equal(t, "running", cur.body["data"].(map[string]any)["status"])

		// keep_lock: the worker "dies" and leaves the clone lock behind.
		s.mustCtl("POST", "/faults/task", `{"type":"qmclone","vmid":103,"exitstatus":"unexpected status","keep_lock":true}`)
		require.Equal(t, "unexpected status", s.finish(s.clone("103"))["exitstatus"])
		cfg := s.call("GET", "/nodes/pve1/qemu/103/config", nil)
		require.Equal(t, 200, cfg.code, cfg.status)
		require.Equal(t, "clone", cfg.body["data"].(map[string]any)["lock"])
	})

	t.Run("node offline", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		var f map[string]any
		require.Equal(t, 200, s.ctl("POST", "/faults/node", `{"node":"pve2","offline":true}`, &f))
		require.Equal(t, []any{"pve2"}, f["offline_nodes"])
		r := s.call("GET", "/nodes/pve2/status", nil)
		require.Equal(t, 595, r.code)
		require.Equal(t, connRefused, r.status)
		require.Equal(t, 200, s.call("GET", "/nodes/pve1/status", nil).code)
		nodes := s.call("GET", "/cluster/resources", url.Values{"type": {"node"}}).body["data"].([]any)
		status := map[string]any{}
		for _, n := range nodes {
			m := n.(map[string]any)
			status[m["node"].(string)] = m["status"]
		}
		require.Equal(t, map[string]any{"pve1": "online", "pve2": "offline"}, status)

		require.Equal(t, 404, s.ctl("POST", "/faults/node", `{"node":"pve9","offline":true}`, &f))
		s.mustCtl("POST", "/faults/node", `{"node":"pve2","offline":false}`)
		require.Equal(t, 200, s.call("GET", "/nodes/pve2/status", nil).code)
	})

	t.Run("latency", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		var f map[string]any
		require.Equal(t, 200, s.ctl("POST", "/faults/latency", `{"fixed":"300ms","jitter":"100ms"}`, &f))
		require.Equal(t, "300ms", f["latency"])
		require.Equal(t, "100ms", f["jitter"])
		for range 2 {
			start := time.Now()
			require.Equal(t, 200, s.call("GET", "/version", nil).code)
			require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
		}
		// Latency delays every API answer, errors included.
		start := time.Now()
		require.Equal(t, 500, s.call("GET", "/nodes/pve1/qemu/555/config", nil).code)
		require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	})

	t.Run("leave lock", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		var out map[string]any
		require.Equal(t, 200, s.ctl("POST", "/faults/lock", `{"vmid":9000,"lock":"backup"}`, &out))
		require.Equal(t, map[string]any{"vmid": float64(9000), "lock": "backup"}, out)
		r := s.call("POST", "/nodes/pve1/qemu/9000/clone", url.Values{"newid": {"101"}})
		require.Equal(t, "500 VM is locked (backup)", r.status)
		require.Equal(t, "VM is locked (backup)\n", r.body["message"])
		cfg := s.call("GET", "/nodes/pve1/qemu/9000/config", nil)
		require.Equal(t, "backup", cfg.body["data"].(map[string]any)["lock"])

		// DELETE /_sim/faults keeps locks already left; lock "" removes it.
		s.mustCtl("DELETE", "/faults", "")
		require.Equal(t, "500 VM is locked (backup)", s.call("POST", "/nodes/pve1/qemu/9000/clone", url.Values{"newid": {"101"}}).status)
		s.mustCtl("POST", "/faults/lock", `{"vmid":9000,"lock":""}`)
		s.clone("101")

		require.Equal(t, 404, s.ctl("POST", "/faults/lock", `{"vmid":555,"lock":"backup"}`, &out))
		require.Contains(t, out["error"], "no VM 555")
	})

	t.Run("never-running", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		require.Equal(t, "OK", s.finish(s.clone("101"))["exitstatus"])
		var f map[string]any
		require.Equal(t, 200, s.ctl("POST", "/faults/never-running", `{"vmid":101,"on":true}`, &f))
		require.Equal(t, []any{float64(101)}, f["never_running"])
		st := s.finish(s.upid(s.call("POST", "/nodes/pve1/qemu/101/status/start", nil)))
		require.Equal(t, "OK", st["exitstatus"], "the start task succeeds")
		cur := s.call("GET", "/nodes/pve1/qemu/101/status/current", nil)
		require.Equal(t, 200, cur.code, cur.status)
		require.Equal(t, "stopped", cur.body["data"].(map[string]any)["status"], "but the guest never runs")

		s.mustCtl("POST", "/faults/never-running", `{"vmid":101,"on":false}`)
		require.Equal(t, "OK", s.finish(s.upid(s.call("POST", "/nodes/pve1/qemu/101/status/start", nil)))["exitstatus"])
		cur = s.call("GET", "/nodes/pve1/qemu/101/status/current", nil)
		require.Equal(t, "running", cur.body["data"].(map[string]any)["status"])
	})

	t.Run("no quorum", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		s.mustCtl("POST", "/faults/quorum", `{"quorate":false}`)
		require.Equal(t, "500 cluster not ready - no quorum?", s.call("POST", "/nodes/pve1/qemu/9000/clone", url.Values{"newid": {"101"}}).status)
		require.Equal(t, 200, s.call("GET", "/cluster/resources", nil).code, "reads still work")
	})

	t.Run("state dump and clearing faults", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		up := s.clone("101")
		s.finish(up)

		var st struct {
			Time    time.Time `json:"time"`
			Quorate bool      `json:"quorate"`
			Nodes   []struct {
				Name string `json:"name"`
			} `json:"nodes"`
			VMs []struct {
				VMID     int               `json:"vmid"`
				Node     string            `json:"node"`
				Name     string            `json:"name"`
				Status   string            `json:"status"`
				Template bool              `json:"template"`
				Config   map[string]string `json:"config"`
			} `json:"vms"`
			Tasks []struct {
				UPID       string `json:"upid"`
				Type       string `json:"type"`
				ExitStatus string `json:"exitstatus"`
			} `json:"tasks"`
			Requests int `json:"requests"`
			Rejected int `json:"rejected"`
		}
		require.Equal(t, 200, s.ctl("GET", "/state", "", &st))
		require.True(t, st.Quorate)
		require.Len(t, st.Nodes, 2)
		require.Len(t, st.VMs, 2, "the template and the clone")
		byID := map[int]int{}
		for i, v := range st.VMs {
			byID[v.VMID] = i
		}
		require.Contains(t, byID, 9000)
		require.Contains(t, byID, 101)
		tmpl, vm := st.VMs[byID[9000]], st.VMs[byID[101]]
		require.True(t, tmpl.Template)
		require.Equal(t, "debian-12-template", tmpl.Name)
		require.Equal(t, "pve1", tmpl.Node)
		require.False(t, vm.Template)
		require.Equal(t, "stopped", vm.Status)
		require.NotEmpty(t, vm.Config["scsi0"])
		require.Len(t, st.Tasks, 1)
		require.Equal(t, up, st.Tasks[0].UPID)
		require.Equal(t, "qmclone", st.Tasks[0].Type)
		require.Equal(t, "OK", st.Tasks[0].ExitStatus)
		require.Positive(t, st.Requests)
		require.Zero(t, st.Rejected)

		// Set one fault of each kind, then clear them all.
		s.mustCtl("POST", "/faults/latency", `{"fixed":"1ms"}`)
		s.mustCtl("POST", "/faults/error-rate", `{"endpoint":"GET /version","rate":1,"status":503}`)
		s.mustCtl("POST", "/faults/fail-next", `{"endpoint":"GET /cluster/nextid","count":5,"status":500}`)
		s.mustCtl("POST", "/faults/task", `{"type":"qmstart","exitstatus":"start failed"}`)
		s.mustCtl("POST", "/faults/node", `{"node":"pve2","offline":true}`)
		s.mustCtl("POST", "/faults/never-running", `{"vmid":101,"on":true}`)
		s.mustCtl("POST", "/faults/quorum", `{"quorate":false}`)
		f := s.faults()
		require.Equal(t, "1ms", f["latency"])
		require.Len(t, f["error_rates"], 1)
		require.Len(t, f["fail_next"], 1)
		require.Len(t, f["task_faults"], 1)
		require.Equal(t, []any{"pve2"}, f["offline_nodes"])
		require.Equal(t, []any{float64(101)}, f["never_running"])
		require.Equal(t, false, f["quorate"])
		require.Equal(t, "503 Service Unavailable", s.call("GET", "/version", nil).status)

		var cleared map[string]any
		require.Equal(t, 200, s.ctl("DELETE", "/faults", "", &cleared))
		want := map[string]any{"latency": "0s", "jitter": "0s", "error_rates": []any{}, "fail_next": []any{},
			"task_faults": []any{}, "offline_nodes": []any{}, "never_running": []any{}, "quorate": true}
		require.Equal(t, want, cleared)
		require.Equal(t, want, s.faults())

		require.Equal(t, 200, s.call("GET", "/version", nil).code)
		require.Equal(t, 200, s.call("GET", "/cluster/nextid", nil).code)
		require.Equal(t, 200, s.call("GET", "/nodes/pve2/status", nil).code)
		st2 := s.finish(s.upid(s.call("POST", "/nodes/pve1/qemu/101/status/start", nil)))
		require.Equal(t, "OK", st2["exitstatus"])
		cur := s.call("GET", "/nodes/pve1/qemu/101/status/current", nil)
		require.Equal(t, "running", cur.body["data"].(map[string]any)["status"])

		// No request in this whole session was rejected by schema validation.
		var rejected []any
		require.Equal(t, 200, s.ctl("GET", "/requests?rejected=1", "", &rejected))
		require.Empty(t, rejected)
	})

	t.Run("unknown control endpoint", func(t *testing.T) {
		t.Parallel()
		s := startPvesim(t, bin)
		var e map[string]any
		require.Equal(t, 404, s.ctl("POST", "/faults/meteor", `{}`, &e))
		require.Contains(t, e["error"], "unknown control endpoint POST /_sim/faults/meteor")
		// The clock is manual here; advancing works.
		var adv map[string]any
		require.Equal(t, 200, s.ctl("POST", "/clock/advance", `{"duration":"30s"}`, &adv))
		require.NotEmpty(t, adv["time"])
	})
}
