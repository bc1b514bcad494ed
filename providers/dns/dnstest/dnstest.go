// Package dnstest runs a real BIND 9 `named` for tests: on a free loopback port, in a
// temporary directory, with a TSIG key and dynamic (allow-update) zones.
//
// A missing `named` fails the test (it is never skipped): run scripts/install-test-deps.sh, which
// `make test` does.
//
// The default server serves the forward zones example.test and cust.example.test (so that
// www.cust.example.test matches two zones), the IPv4 reverse zone 2.0.192.in-addr.arpa
// (192.0.2.0/24) and the IPv6 reverse zone 8.b.d.0.1.0.0.2.ip6.arpa (2001:db8::/32), all
// updatable with Key and transferable (AXFR) with Key. OtherKey is a second key the server
// knows but does not allow to update anything (to provoke REFUSED).
package dnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/pvectl/pvectl/providers/dns"
)

// Zone names served by default.
const (
	Forward  = "example.test"
	Forward2 = "cust.example.test"
	Reverse4 = "2.0.192.in-addr.arpa"     // 192.0.2.0/24
	Reverse6 = "8.b.d.0.1.0.0.2.ip6.arpa" // 2001:db8::/32
)

// Key names the server knows.
const (
	KeyName      = "pvectl-key"
	OtherKeyName = "other-key" // known, but allowed to update nothing
)

// StartTimeout bounds how long Start and Restart wait for named to answer.
const StartTimeout = 20 * time.Second

// Options configures the server. The zero value gives the default zones and hmac-sha256.
type Options struct {
	Zones     []string // zone names; default Forward, Forward2, Reverse4, Reverse6
	Algorithm string   // TSIG algorithm of Key: hmac-sha256 (default), hmac-sha512, hmac-sha1
	// UpdatePolicy restricts Key as docs/dns.md suggests, instead of allow-update: forward zones
	// "update-policy { grant KEY zonesub A AAAA; }", reverse zones "... zonesub PTR; }".
	UpdatePolicy bool
}

// Server is one running (or stopped) named.
type Server struct {
	Addr      string   // 127.0.0.1:port
	Dir       string   // its directory: named.conf, zone files, journals, named.log
	Zones     []string // zone names served
	KeyName   string
	Algorithm string
	Secret    string // base64 secret of KeyName
	// OtherSecret is the secret of OtherKeyName.
	OtherSecret string

	tb     testing.TB
	policy bool
	named  string
	marker string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts named with the default options and stops it when the test ends.
func Start(tb testing.TB) *Server { return StartWith(tb, Options{}) }

// StartWith starts named with opts and stops it when the test ends.
func StartWith(tb testing.TB, opts Options) *Server {
	tb.Helper()
	bin := findNamed()
	if bin == "" {
		tb.Fatalf("dnstest: BIND 9 `named` is not installed (looked at $" + EnvNamed + ", in $PATH, /usr/sbin, /usr/local/sbin). " +
			"The DNS tests need a real server: run scripts/install-test-deps.sh as root " +
			"(apt-get install -y bind9 dnsutils), or `make test`, which does it")
	}
	zones := append([]string(nil), opts.Zones...)
	if len(zones) == 0 {
		zones = []string{Forward, Forward2, Reverse4, Reverse6}
	}
	for i, z := range zones {
		zones[i] = dns.Normalize(z)
	}
	alg := strings.TrimSuffix(strings.ToLower(opts.Algorithm), ".")
	if alg == "" {
		alg = dns.DefaultAlgorithm
	}
	s := &Server{
		Dir:         tb.TempDir(),
		Zones:       zones,
		KeyName:     KeyName,
		Algorithm:   alg,
		Secret:      randomSecret(tb, alg),
		OtherSecret: randomSecret(tb, "hmac-sha256"),
		tb:          tb,
		policy:      opts.UpdatePolicy,
		named:       bin,
		marker:      randomHex(tb, 8),
	}
	if err := s.writeZones(); err != nil {
		tb.Fatalf("dnstest: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConf(); err != nil {
			tb.Fatalf("dnstest: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.Stop)
			return s
		}
		s.kill()
	}
	tb.Fatalf("dnstest: cannot start named: %v\n--- named.log ---\n%s", lastErr, s.Log())
	return nil
}

// Zone returns the providers/dns configuration of one served zone, with Key.
func (s *Server) Zone(name string) dns.Zone {
	return dns.Zone{Name: dns.Normalize(name), Server: s.Addr, KeyName: s.KeyName, Algorithm: s.Algorithm, Secret: s.Secret}
}

// DNSZones returns the providers/dns configuration of every served zone.
func (s *Server) DNSZones() []dns.Zone {
	out := make([]dns.Zone, 0, len(s.Zones))
	for _, z := range s.Zones {
		out = append(out, s.Zone(z))
	}
	return out
}

// PID is named's process id, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Log returns named's log (its stderr, across restarts).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "named.log"))
	return string(b)
}

// Stop stops named with SIGTERM to its PID and waits for it to exit (SIGKILL after 10 s).
// Zone data and journals stay in Dir, so Restart serves what was published before.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped server again on the same address (it stops a running one first).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.kill()
		s.tb.Fatalf("dnstest: cannot restart named on %s: %v\n--- named.log ---\n%s", s.Addr, err, s.Log())
	}
}

func (s *Server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-done
	}
}

func (s *Server) start() error {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "named.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	fmt.Fprintf(logf, "=== dnstest: starting %s on %s\n", s.named, s.Addr)
	cmd := exec.Command(s.named, "-g", "-4", "-n", "1", "-c", filepath.Join(s.Dir, "named.conf"))
	cmd.Dir = s.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.named, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(StartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("named exited during start-up (%v)", cmd.ProcessState)
		default:
		}
		if l := s.Log(); int64(len(l)) > logStart && strings.Contains(l[logStart:], "address in use") {
			return errors.New("port already in use (named logged \"address in use\")")
		}
		if s.answersMarker("udp") && s.answersMarker("tcp") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("named did not answer on %s within %v", s.Addr, StartTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// answersMarker reports whether our named (not another one sharing the port) answers.
func (s *Server) answersMarker(network string) bool {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(markerName(s.Zones[0])), mdns.TypeTXT)
	m.RecursionDesired = false
	c := &mdns.Client{Net: network, Timeout: 200 * time.Millisecond}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil || r == nil || r.Rcode != mdns.RcodeSuccess {
		return false
	}
	for _, rr := range r.Answer {
		if txt, ok := rr.(*mdns.TXT); ok && len(txt.Txt) == 1 && txt.Txt[0] == s.marker {
			return true
		}
	}
	return false
}

func markerName(zone string) string { return "dnstest-marker." + zone }

func (s *Server) writeConf() error {
	var b bytes.Buffer
	fmt.Fprintf(&b, `options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	managed-keys-directory %q;
	listen-on port %s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	allow-query { any; };
	allow-transfer { none; };
	notify no;
	dnssec-validation no;
};
controls { };
logging {
	channel stderr_log { stderr; severity info; print-time yes; print-category yes; print-severity yes; };
	category default { stderr_log; };
	category update { stderr_log; };
	category update-security { stderr_log; };
	category security { stderr_log; };
	category lame-servers { null; };
};
key %q { algorithm %s; secret %q; };
key %q { algorithm hmac-sha256; secret %q; };
`, s.Dir, filepath.Join(s.Dir, "named.pid"), filepath.Join(s.Dir, "session.key"), s.Dir, portOf(s.Addr),
		s.KeyName, s.Algorithm, s.Secret, OtherKeyName, s.OtherSecret)
	for _, z := range s.Zones {
		update := fmt.Sprintf("allow-update { key %q; };", s.KeyName)
		if s.policy {
			types := "A AAAA"
			if dns.IsReverseName(z) {
				types = "PTR"
			}
			update = fmt.Sprintf("update-policy { grant %s zonesub %s; };", s.KeyName, types)
		}
		fmt.Fprintf(&b, "zone %q { type primary; file %q; %s allow-transfer { key %q; }; };\n",
			z, zoneFile(z), update, s.KeyName)
	}
	return os.WriteFile(filepath.Join(s.Dir, "named.conf"), b.Bytes(), 0o600)
}

func (s *Server) writeZones() error {
	for i, z := range s.Zones {
		var b bytes.Buffer
		fmt.Fprintf(&b, "$TTL 300\n@ IN SOA ns1.%s. hostmaster.%s. ( 1 3600 600 86400 300 )\n  IN NS ns1.%s.\n", Forward, Forward, Forward)
		if z == Forward {
			b.WriteString("ns1 IN A 127.0.0.1\n")
		}
		if i == 0 {
			fmt.Fprintf(&b, "%s. IN TXT %q\n", markerName(z), s.marker)
		}
		if err := os.WriteFile(filepath.Join(s.Dir, zoneFile(z)), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func zoneFile(zone string) string { return "db." + zone }

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// freePort returns a port on 127.0.0.1 free for both TCP and UDP right now.
func freePort() (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		_ = l.Close()
		if err != nil {
			continue
		}
		_ = u.Close()
		return port, nil
	}
	return 0, errors.New("no free loopback port for TCP and UDP")
}

// EnvNamed names an environment variable that, when set, is the path of the named binary to run.
const EnvNamed = "DNSTEST_NAMED"

func findNamed() string {
	if p, ok := os.LookupEnv(EnvNamed); ok {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
		return ""
	}
	if p, err := exec.LookPath("named"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/named", "/usr/local/sbin/named", "/sbin/named"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func randomSecret(tb testing.TB, alg string) string {
	n := 32
	if strings.Contains(alg, "512") {
		n = 64
	}
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("dnstest: random: %v", err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func randomHex(tb testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("dnstest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
