package proxmox_test

// Wire-level tests of the adapter against tiny loopback servers: PVE's
// error shapes (message in the status line), request encoding of the
// go-proxmox traps, TLS, and secret redaction. The behaviour against a
// stateful PVE is in adapter_test.go (pvesim).

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/proxmox"
)

const (
	wireTokenID = "pvectl@pve!wire"
	wireSecret  = "5ec7e7aa-0000-4000-8000-5ec7e7aa5ec7"
	wireUPID    = "UPID:pve:00001234:00ABCDEF:65A0B1C2:qmstart:100:pvectl@pve!wire:"
)

// rawServer answers every request with a raw HTTP/1.1 response written
// through the hijacked connection, so the reason phrase can be PVE's message.
func rawServer(t *testing.T, status int, reason, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer func() { _ = conn.Close() }()
		_, _ = fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			status, reason, len(body), body)
		_ = buf.Flush()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newWireAdapter(t *testing.T, rawURL string) *proxmox.Adapter {
	t.Helper()
	a, err := proxmox.New(proxmox.Options{URL: rawURL, TokenID: wireTokenID, TokenSecret: wireSecret})
	require.NoError(t, err)
	return a
}

func pveBody(msg string, fields map[string]string, legacy bool) string {
	b := map[string]any{"data": nil}
	if !legacy {
		b["message"] = msg + "\n"
	}
	if fields != nil {
		b["errors"] = fields
	}
	out, _ := json.Marshal(b)
	return string(out)
}

// Every HTTP row of the message table, sent over the wire as PVE sends it
// (new and legacy body shapes), comes back as a classified *proxmox.Error.
func TestWireErrorsClassified(t *testing.T) {
	t.Parallel()
	for _, tc := range messageTable {
		if tc.status == 0 {
			continue
		}
		for _, legacy := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/legacy=%t", tc.name, legacy), func(t *testing.T) {
				t.Parallel()
				srv := rawServer(t, tc.status, tc.msg, pveBody(tc.msg, tc.fields, legacy))
				a := newWireAdapter(t, srv.URL)
				vm := proxmox.VMRef{Node: "pve", VMID: 100}
				_, err := a.Start(context.Background(), vm, proxmox.StartOptions{})
				require.Error(t, err)
				var pe *proxmox.Error
				require.ErrorAs(t, err, &pe)
				require.Equal(t, tc.class, pe.Class, "%v", err)
				require.Equal(t, tc.status, pe.HTTPStatus)
				require.Equal(t, tc.msg, pe.Message)
				require.Equal(t, tc.applied, pe.Applied)
				require.Equal(t, "pve", pe.Node)
				require.Equal(t, 100, pe.VMID)
				require.Equal(t, tc.class.Retryable(), proxmox.IsRetryable(err))
				if tc.fields != nil {
					require.Equal(t, tc.fields, pe.Fields)
				}
				// A GET can never have been applied.
				_, err = a.VMStatus(context.Background(), vm)
				require.ErrorAs(t, err, &pe)
				require.Equal(t, tc.class, pe.Class)
				require.False(t, pe.Applied)
			})
		}
	}
}

type captured struct {
	Method, Path, RawPath, Query, ContentType, Auth string
	Body                                            map[string]any
	RawBody                                         string
}

// captureServer records requests and answers {"data": data}.
func captureServer(t *testing.T, data any) (*httptest.Server, func() []captured) {
	t.Helper()
	var (
		mu   sync.Mutex
		reqs []captured
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := captured{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Auth: r.Header.Get("Authorization")}
		b, _ := io.ReadAll(r.Body)
		c.RawBody = string(b)
		if len(b) > 0 {
			d := json.NewDecoder(strings.NewReader(string(b)))
			d.UseNumber()
			_ = d.Decode(&c.Body)
		}
		mu.Lock()
		reqs = append(reqs, c)
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	t.Cleanup(srv.Close)
	return srv, func() []captured {
		mu.Lock()
		defer mu.Unlock()
		return append([]captured(nil), reqs...)
	}
}

// The go-proxmox traps of notes.md §3, checked on the wire.
func TestWireRequestEncoding(t *testing.T) {
	t.Parallel()
	vm := proxmox.VMRef{Node: "pve", VMID: 100}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		call  func(a *proxmox.Adapter) error
		check func(t *testing.T, c captured)
	}{
		{"shutdown timeout forceStop", func(a *proxmox.Adapter) error {
			_, err := a.Shutdown(ctx, vm, proxmox.ShutdownOptions{Timeout: 120e9, ForceStop: true})
			return err
		}, func(t *testing.T, c captured) {
			require.Equal(t, "POST", c.Method)
			require.Equal(t, "/api2/json/nodes/pve/qemu/100/status/shutdown", c.Path)
			require.Equal(t, "application/json", c.ContentType)
			require.Equal(t, map[string]any{"timeout": json.Number("120"), "forceStop": json.Number("1")}, c.Body)
		}},
		{"stop skiplock", func(a *proxmox.Adapter) error {
			_, err := a.Stop(ctx, vm, proxmox.StopOptions{SkipLock: true})
			return err
		}, func(t *testing.T, c captured) {
			require.Equal(t, map[string]any{"skiplock": json.Number("1")}, c.Body)
		}},
		{"delete purge in query", func(a *proxmox.Adapter) error {
			_, err := a.Delete(ctx, vm, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
			return err
		}, func(t *testing.T, c captured) {
			require.Equal(t, "DELETE", c.Method)
			require.Nil(t, c.Body)
			q, _ := url.ParseQuery(c.Query)
			require.Equal(t, url.Values{"purge": {"1"}, "destroy-unreferenced-disks": {"1"}}, q)
		}},
		{"firewall enable=0 is sent", func(a *proxmox.Adapter) error {
			return a.SetFirewallOptions(ctx, vm, proxmox.FirewallOptions{Enable: proxmox.Bool(false), IPFilter: proxmox.Bool(true), PolicyIn: "DROP"})
		}, func(t *testing.T, c captured) {
			require.Equal(t, "PUT", c.Method)
			require.Equal(t, map[string]any{"enable": json.Number("0"), "ipfilter": json.Number("1"), "policy_in": "DROP"}, c.Body)
		}},
		{"ipset delete force is sent", func(a *proxmox.Adapter) error {
			return a.DeleteIPSet(ctx, vm, "ipfilter-net0", true)
		}, func(t *testing.T, c captured) {
			require.Equal(t, "/api2/json/nodes/pve/qemu/100/firewall/ipset/ipfilter-net0", c.Path)
			require.Equal(t, "force=1", c.Query)
		}},
		{"ipset entry cidr escaped", func(a *proxmox.Adapter) error {
			return a.RemoveIPSetEntry(ctx, vm, "ipfilter-net0", "2001:db8::/64")
		}, func(t *testing.T, c captured) {
			require.Equal(t, "/api2/json/nodes/pve/qemu/100/firewall/ipset/ipfilter-net0/2001:db8::%2F64", c.RawPath)
		}},
		{"config types and delete", func(a *proxmox.Adapter) error {
			_, err := a.SetConfig(ctx, vm, proxmox.ConfigChange{Set: map[string]string{"cores": "4", "memory": "4096", "onboot": "1", "cpulimit": "1.5", "name": "web1"}, Delete: []string{"ide3", "unused0"}, Digest: "abc"})
			return err
		}, func(t *testing.T, c captured) {
			require.Equal(t, map[string]any{"cores": json.Number("4"), "memory": "4096", "onboot": json.Number("1"),
				"cpulimit": json.Number("1.5"), "name": "web1", "delete": "ide3,unused0", "digest": "abc"}, c.Body)
		}},
		{"cloud-init sshkeys encoding", func(a *proxmox.Adapter) error {
			return a.SetCloudInit(ctx, vm, proxmox.CloudInit{User: "admin", SSHKeys: []string{"ssh-ed25519 AAAAC3Nz+/= a@b", "ssh-rsa AAAAB3 c@d"},
				IPConfigs:   map[int]proxmox.IPConfig{0: {IPv4: "192.0.2.10/24", GW4: "192.0.2.1", IPv6: "2001:db8::10/64", GW6: "2001:db8::1"}},
				Nameservers: []string{"192.0.2.53", "2001:db8::53"}, SearchDomain: "example.com"})
		}, func(t *testing.T, c captured) {
			require.Equal(t, "PUT", c.Method)
			require.Equal(t, map[string]any{"ciuser": "admin",
				"sshkeys":      "ssh-ed25519%20AAAAC3Nz%2B%2F%3D%20a%40b%0Assh-rsa%20AAAAB3%20c%40d",
				"ipconfig0":    "ip=192.0.2.10/24,gw=192.0.2.1,ip6=2001:db8::10/64,gw6=2001:db8::1",
				"nameserver":   "192.0.2.53 2001:db8::53",
				"searchdomain": "example.com"}, c.Body)
		}},
		{"volume path keeps slash", func(a *proxmox.Adapter) error {
			_, err := a.DeleteVolume(ctx, "pve", "local", "local:backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst")
			return err
		}, func(t *testing.T, c captured) {
			require.Equal(t, "/api2/json/nodes/pve/storage/local/content/local:backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst", c.RawPath)
		}},
		{"token header", func(a *proxmox.Adapter) error {
			_, err := a.VMStatus(ctx, vm)
			return err
		}, func(t *testing.T, c captured) {
			require.Equal(t, "PVEAPIToken="+wireTokenID+"="+wireSecret, c.Auth)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, reqs := captureServer(t, wireUPID)
			a := newWireAdapter(t, srv.URL)
			err := tc.call(a)
			if tc.name != "token header" {
				require.NoError(t, err)
			}
			got := reqs()
			require.Len(t, got, 1)
			tc.check(t, got[0])
		})
	}
	// The sshkeys encoding round-trips.
	keys := []string{"ssh-ed25519 AAAAC3Nz+/= a@b", "ssh-rsa AAAAB3 c@d"}
	require.Equal(t, keys, proxmox.DecodeSSHKeys(proxmox.EncodeSSHKeys(keys...)))
}

// Null where PVE returns null for an async endpoint (resize on 7.x) is a
// zero TaskRef, not an error; a non-UPID string is an error.
func TestWireTaskResponses(t *testing.T) {
	t.Parallel()
	vm := proxmox.VMRef{Node: "pve", VMID: 100}
	srv, _ := captureServer(t, nil)
	ref, err := newWireAdapter(t, srv.URL).ResizeDisk(context.Background(), vm, "scsi0", "40G")
	require.NoError(t, err)
	require.True(t, ref.IsZero())

	srv, _ = captureServer(t, "not-a-upid")
	_, err = newWireAdapter(t, srv.URL).ResizeDisk(context.Background(), vm, "scsi0", "40G")
	require.Error(t, err)
	require.Equal(t, proxmox.ClassUnknown, proxmox.Classify(err))

	srv, _ = captureServer(t, wireUPID)
	ref, err = newWireAdapter(t, srv.URL).Start(context.Background(), vm, proxmox.StartOptions{})
	require.NoError(t, err)
	require.Equal(t, proxmox.TaskRef{Node: "pve", UPID: wireUPID}, ref)
}

// Real PVE answers GET /nodes/{node}/storage/{storage}/status for a storage
// that does not exist with raise_param_exc({storage => "No such storage."})
// (pve-storage PVE/API2/Storage/Status.pm read_status): a 400, not the 500
// `storage 'x' does not exist` of the other storage calls. It is the same
// condition, so it must be ClassStorage like the 500 (errors.go: ClassStorage
// is "storage does not exist, ..."), not a generic ClassInvalid.
func TestWireStorageStatusNoSuchStorage(t *testing.T) {
	t.Parallel()
	fields := map[string]string{"storage": "No such storage."}
	for _, legacy := range []bool{false, true} {
		srv := rawServer(t, 400, "Parameter verification failed.", pveBody("Parameter verification failed.", fields, legacy))
		_, err := newWireAdapter(t, srv.URL).StorageStatus(context.Background(), "pve", "nosuch")
		var pe *proxmox.Error
		require.ErrorAs(t, err, &pe)
		require.Equal(t, 400, pe.HTTPStatus)
		require.Equal(t, fields, pe.Fields)
		require.Equal(t, proxmox.ClassStorage.String(), pe.Class.String(), "legacy=%t: %v", legacy, err)
		require.False(t, proxmox.IsRetryable(err))
	}
}

// Task status with a string starttime (go-proxmox panics on it) and a token
// user.
func TestWireTaskStatusShapes(t *testing.T) {
	t.Parallel()
	srv, _ := captureServer(t, map[string]any{"upid": wireUPID, "node": "pve", "pid": 4660, "pstart": 11259375,
		"starttime": "1704980930", "type": "qmstart", "id": "100", "user": "pvectl@pve", "tokenid": "wire",
		"status": "stopped", "exitstatus": "WARNINGS: 2"})
	st, err := newWireAdapter(t, srv.URL).TaskStatus(context.Background(), proxmox.TaskRef{Node: "pve", UPID: wireUPID})
	require.NoError(t, err)
	require.True(t, st.Done())
	require.True(t, st.Succeeded())
	require.NoError(t, st.Err())
	require.Equal(t, "pvectl@pve!wire", st.User)
	require.Equal(t, int64(1704980930), st.StartTime.Unix())
}

func secretFree(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	for _, s := range []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		require.NotContains(t, s, wireSecret)
	}
	var pe *proxmox.Error
	if require.ErrorAs(t, err, &pe); pe.Err != nil {
		require.NotContains(t, pe.Err.Error(), wireSecret)
	}
}

func TestSecretNeverInErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm := proxmox.VMRef{Node: "pve", VMID: 100}

	t.Run("401", func(t *testing.T) {
		t.Parallel()
		srv := rawServer(t, 401, "Authentication failed!", "")
		_, err := newWireAdapter(t, srv.URL).VMStatus(ctx, vm)
		secretFree(t, err)
		require.True(t, proxmox.IsAuth(err))
	})
	t.Run("server echoes the header", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, buf, _ := w.(http.Hijacker).Hijack()
			defer func() { _ = conn.Close() }()
			reason := "bad token " + r.Header.Get("Authorization")
			body := pveBody(reason, map[string]string{"token": reason}, false)
			_, _ = fmt.Fprintf(buf, "HTTP/1.1 500 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", reason, len(body), body)
			_ = buf.Flush()
		}))
		t.Cleanup(srv.Close)
		_, err := newWireAdapter(t, srv.URL).Start(ctx, vm, proxmox.StartOptions{})
		secretFree(t, err)
		require.Contains(t, err.Error(), "[REDACTED]")
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		_, err = newWireAdapter(t, "http://"+addr).Start(ctx, vm, proxmox.StartOptions{})
		secretFree(t, err)
		require.Equal(t, proxmox.ClassTransient, proxmox.Classify(err))
		require.False(t, proxmox.MaybeApplied(err), "a refused connection applied nothing")
	})
	t.Run("connection dropped", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			_ = conn.Close()
		}))
		t.Cleanup(srv.Close)
		_, err := newWireAdapter(t, srv.URL).Start(ctx, vm, proxmox.StartOptions{})
		secretFree(t, err)
		require.Equal(t, proxmox.ClassTransient, proxmox.Classify(err))
		require.True(t, proxmox.MaybeApplied(err), "the POST may have been applied")
	})
	t.Run("options", func(t *testing.T) {
		t.Parallel()
		o := proxmox.Options{URL: "https://pve:8006", TokenID: wireTokenID, TokenSecret: wireSecret}
		js, err := json.Marshal(o)
		require.NoError(t, err)
		var sb strings.Builder
		slog.New(slog.NewJSONHandler(&sb, nil)).Info("x", "opts", o)
		for _, s := range []string{o.String(), fmt.Sprintf("%v", o), fmt.Sprintf("%+v", o), fmt.Sprintf("%#v", o), fmt.Sprint(&o), string(js), sb.String()} {
			require.NotContains(t, s, wireSecret)
			require.Contains(t, s, "REDACTED")
		}
		a, err := proxmox.New(o)
		require.NoError(t, err)
		require.NotContains(t, fmt.Sprintf("%v %+v %#v", a, a, a), wireSecret)
	})
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	ca := filepath.Join(t.TempDir(), "empty.pem")
	require.NoError(t, os.WriteFile(ca, []byte("not a cert"), 0o600))
	for _, tc := range []struct {
		name string
		o    proxmox.Options
	}{
		{"no url", proxmox.Options{TokenID: wireTokenID, TokenSecret: wireSecret}},
		{"bad url", proxmox.Options{URL: "pve:8006", TokenID: wireTokenID, TokenSecret: wireSecret}},
		{"no secret", proxmox.Options{URL: "https://pve:8006", TokenID: wireTokenID}},
		{"bad token id", proxmox.Options{URL: "https://pve:8006", TokenID: "root", TokenSecret: wireSecret}},
		{"missing ca", proxmox.Options{URL: "https://pve:8006", TokenID: wireTokenID, TokenSecret: wireSecret, CAFile: "/nonexistent/ca.pem"}},
		{"ca without cert", proxmox.Options{URL: "https://pve:8006", TokenID: wireTokenID, TokenSecret: wireSecret, CAFile: ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := proxmox.New(tc.o)
			require.Error(t, err)
			require.Equal(t, proxmox.ClassInvalid, proxmox.Classify(err))
			require.NotContains(t, err.Error(), wireSecret)
		})
	}
}

func TestTLSVerification(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"status": "running", "name": "web1"}})
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))
	vm := proxmox.VMRef{Node: "pve", VMID: 100}
	for _, tc := range []struct {
		name     string
		caFile   string
		insecure bool
		ok       bool
	}{
		{"verified by default", "", false, false},
		{"private CA", caFile, false, true},
		{"insecure when configured", "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := proxmox.New(proxmox.Options{URL: srv.URL, TokenID: wireTokenID, TokenSecret: wireSecret, CAFile: tc.caFile, InsecureSkipVerify: tc.insecure})
			require.NoError(t, err)
			st, err := a.VMStatus(context.Background(), vm)
			if !tc.ok {
				require.Error(t, err)
				require.Equal(t, proxmox.ClassInvalid, proxmox.Classify(err), "%v", err)
				secretFree(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, st.Running())
		})
	}
}
