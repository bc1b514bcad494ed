package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/dns/dnstest"
	"github.com/rogpeppe/go-internal/testscript"
)

// Testscript commands that run a real BIND 9 named (providers/dns/dnstest) inside the test
// process, so the scenarios check records against a real server. A missing named fails the
// script; it is never skipped.
//
//	named start               start named on a free loopback port, with the zones example.test,
//	                          cust.example.test, 2.0.192.in-addr.arpa and 8.b.d.0.1.0.0.2.ip6.arpa;
//	                          sets DNS_SERVER (host:port), DNS_KEY, DNS_ALG, DNS_SECRET, and
//	                          DNS_OTHER_KEY/DNS_OTHER_SECRET (a key the server knows but allows nothing)
//	named stop                stop it (zone data and journals are kept)
//	named restart             start it again on the same address
//	named lookup NAME TYPE    print what the server answers, one "NAME TYPE VALUE" line each, sorted
//	named transfer ZONE       print every record of the zone (AXFR, SOA and NS left out), sorted
//	named add ZONE RR...      add records as an operator would with nsupdate
//	named nosecret FILE...    require that no TSIG secret appears in the files
var nameds sync.Map // work dir -> *dnstest.Server

func namedFor(ts *testscript.TestScript) *dnstest.Server {
	v, ok := nameds.Load(ts.Getenv("WORK"))
	if !ok {
		ts.Fatalf("named not started (use: named start)")
	}
	return v.(*dnstest.Server)
}

func namedCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: named start|stop|restart|lookup|transfer|add|nosecret")
	}
	if neg && args[0] != "nosecret" {
		ts.Fatalf("named %s does not support negation", args[0])
	}
	tb := scriptTB{ts: ts}
	switch args[0] {
	case "start":
		s := dnstest.Start(tb)
		nameds.Store(ts.Getenv("WORK"), s)
		ts.Defer(func() { nameds.Delete(ts.Getenv("WORK")) })
		ts.Setenv("DNS_SERVER", s.Addr)
		ts.Setenv("DNS_KEY", s.KeyName)
		ts.Setenv("DNS_ALG", s.Algorithm)
		ts.Setenv("DNS_SECRET", s.Secret)
		ts.Setenv("DNS_OTHER_KEY", dnstest.OtherKeyName)
		ts.Setenv("DNS_OTHER_SECRET", s.OtherSecret)
	case "stop":
		namedFor(ts).Stop()
	case "restart":
		namedFor(ts).Restart()
	case "lookup":
		if len(args) != 3 {
			ts.Fatalf("usage: named lookup NAME TYPE")
		}
		t, ok := mdns.StringToType[strings.ToUpper(args[2])]
		if !ok {
			ts.Fatalf("unknown record type %q", args[2])
		}
		printRRs(ts, namedFor(ts).Lookup(tb, args[1], t))
	case "transfer":
		if len(args) != 2 {
			ts.Fatalf("usage: named transfer ZONE")
		}
		var rrs []mdns.RR
		for _, rr := range namedFor(ts).Transfer(tb, args[1]) {
			if rr.Header().Rrtype != mdns.TypeNS && !strings.HasPrefix(rr.Header().Name, "dnstest-marker.") {
				rrs = append(rrs, rr)
			}
		}
		printRRs(ts, rrs)
	case "add":
		if len(args) < 3 {
			ts.Fatalf("usage: named add ZONE RR...")
		}
		namedFor(ts).AddRR(tb, args[1], args[2:]...)
	case "nosecret":
		s := namedFor(ts)
		for _, f := range args[1:] {
			data := ts.ReadFile(f)
			for _, secret := range []string{s.Secret, s.OtherSecret} {
				if strings.Contains(data, secret) || strings.Contains(data, secret[:16]) {
					ts.Fatalf("%s contains a TSIG secret", f)
				}
			}
		}
	default:
		ts.Fatalf("unknown named command %q", args[0])
	}
}

// printRRs writes "NAME TYPE VALUE" lines, sorted, to the command's stdout.
func printRRs(ts *testscript.TestScript, rrs []mdns.RR) {
	var lines []string
	for _, rr := range rrs {
		h := rr.Header()
		value := strings.TrimPrefix(rr.String(), h.String())
		switch v := rr.(type) {
		case *mdns.PTR:
			value = dns.Normalize(v.Ptr)
		case *mdns.A:
			value = v.A.String()
		case *mdns.AAAA:
			value = v.AAAA.String()
		}
		lines = append(lines, fmt.Sprintf("%s %s %s", dns.Normalize(h.Name), mdns.TypeToString[h.Rrtype], value))
	}
	slices.Sort(lines)
	if len(lines) == 0 {
		// Said out loud: testscript's stdout keeps the previous command's
		// output when a custom command writes nothing.
		lines = []string{"(no records)"}
	}
	for _, l := range lines {
		fmt.Fprintln(ts.Stdout(), l)
	}
}

// scriptTB is the testing.TB dnstest needs, on a testscript: failures fail the script line,
// cleanups run when the script ends, temporary directories live in $WORK. testscript does not
// expose its *testing.T to commands; dnstest uses only the methods below (the embedded nil
// interface only supplies testing.TB's unexported method).
type scriptTB struct {
	testing.TB
	ts *testscript.TestScript
}

func (t scriptTB) Helper()                           {}
func (t scriptTB) Fatalf(format string, args ...any) { t.ts.Fatalf(format, args...) }
func (t scriptTB) Fatal(args ...any)                 { t.ts.Fatalf("%s", fmt.Sprint(args...)) }
func (t scriptTB) Errorf(format string, args ...any) { t.ts.Fatalf(format, args...) }
func (t scriptTB) Logf(format string, args ...any)   { t.ts.Logf(format, args...) }
func (t scriptTB) Cleanup(f func())                  { t.ts.Defer(f) }
func (t scriptTB) Name() string                      { return filepath.Base(t.ts.Getenv("WORK")) }
func (t scriptTB) TempDir() string {
	dir, err := os.MkdirTemp(t.ts.Getenv("WORK"), "named-")
	t.ts.Check(err)
	return dir
}
