package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
)

// occupantTypes are the record types RecordsAt asks for, one query each, once a name is known
// to exist. Servers answer a query of type ANY minimally (RFC 8482: BIND with minimal-any,
// Knot, Cloudflare), so ANY alone cannot list a name's records; it is asked as well, to catch
// types not listed here when the server answers it in full.
var occupantTypes = []uint16{
	mdns.TypeAAAA, mdns.TypeCNAME, mdns.TypeMX, mdns.TypeTXT, mdns.TypeNS, mdns.TypeSOA, mdns.TypeSRV,
	mdns.TypeCAA, mdns.TypePTR, mdns.TypeHINFO, mdns.TypeSSHFP, mdns.TypeTLSA, mdns.TypeHTTPS,
	mdns.TypeSVCB, mdns.TypeNAPTR, mdns.TypeDNAME, mdns.TypeDS, mdns.TypeLOC, mdns.TypeRP, mdns.TypeURI,
	mdns.TypeSPF, mdns.TypeANY,
}

// RecordsAt returns the records the zone's server holds at name, whatever their type: it asks
// for A first (a name that does not exist costs one query and gives no records), then, when the
// name exists, for every type in a list of common ones and for ANY. Queries are unsigned and not
// recursive, like Query. Records a wildcard synthesizes for name (an answer that a made-up
// sibling of name gets too) are left out: they belong to no name, and a record published at name
// replaces them for that name only. When name is at or below a delegation to another server,
// the result is the NS records of the delegation (owned by the zone cut, not by name).
//
// A query that fails (unreachable, timeout, an error RCODE) fails the whole call: the answer
// would be incomplete. A failed ANY query is ignored.
func (u *Updater) RecordsAt(ctx context.Context, zone, name string) ([]Record, error) {
	z, err := u.lookup("query", zone)
	if err != nil {
		return nil, err
	}
	owner := mdns.Fqdn(Normalize(name))
	r, err := u.ask(ctx, z, owner, mdns.TypeA)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Rcode == mdns.RcodeNameError {
			return nil, nil
		}
		return nil, err
	}
	if cut := referral(z, r); cut != nil {
		return cut, nil
	}
	recs := collect(z, r, owner)
	// A CNAME owns its name alone: asking other types would answer the CNAME again.
	if len(recs) == 0 || recs[0].Type != "CNAME" {
		more, err := u.askAll(ctx, z, owner, occupantTypes)
		if err != nil {
			return nil, err
		}
		recs = append(recs, more...)
	}
	recs = dedupe(recs)
	if len(recs) == 0 || Normalize(owner) == Normalize(z.Name) {
		return recs, nil // no wildcard synthesizes a zone's apex
	}
	// A wildcard answers a made-up sibling the way it answered name.
	parent := owner[strings.IndexByte(owner, '.')+1:]
	var types []uint16
	seen := map[uint16]bool{}
	for _, rec := range recs {
		t := mdns.StringToType[rec.Type]
		if !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	probe := "pvectl-probe-" + hex.EncodeToString(b) + "." + parent
	wild, err := u.askAll(ctx, z, probe, types)
	if err != nil {
		return nil, err
	}
	synthesized := map[string]bool{}
	for _, w := range wild {
		w.Name = Normalize(owner)
		synthesized[w.Key()] = true
	}
	out := recs[:0]
	for _, rec := range recs {
		if !synthesized[rec.Key()] {
			out = append(out, rec)
		}
	}
	return out, nil
}

// ask sends one unsigned, non-recursive query.
func (u *Updater) ask(ctx context.Context, z Zone, owner string, t uint16) (*mdns.Msg, error) {
	q := new(mdns.Msg)
	q.SetQuestion(owner, t)
	q.RecursionDesired = false
	q.SetEdns0(4096, false)
	return u.exchange(ctx, z, "query", q, false)
}

// askAll asks for every type in parallel and returns the records owned by owner. NXDOMAIN gives
// no records; a failed ANY query is ignored; any other failure is returned.
func (u *Updater) askAll(ctx context.Context, z Zone, owner string, types []uint16) ([]Record, error) {
	var (
		mu    sync.Mutex
		out   []Record
		first error
		wg    sync.WaitGroup
	)
	for _, t := range types {
		wg.Go(func() {
			r, err := u.ask(ctx, z, owner, t)
			mu.Lock()
			defer mu.Unlock()
			var e *Error
			switch {
			case err == nil:
				if referral(z, r) == nil {
					out = append(out, collect(z, r, owner)...)
				}
			case t == mdns.TypeANY:
			case errors.As(err, &e) && e.Rcode == mdns.RcodeNameError:
			case first == nil:
				first = err
			}
		})
	}
	wg.Wait()
	return out, first
}

// collect returns the answer records owned by owner, of any type.
func collect(z Zone, r *mdns.Msg, owner string) []Record {
	var out []Record
	for _, rr := range r.Answer {
		h := rr.Header()
		if !strings.EqualFold(h.Name, owner) || h.Rrtype == mdns.TypeOPT {
			continue
		}
		if hi, ok := rr.(*mdns.HINFO); ok && strings.EqualFold(hi.Cpu, "RFC8482") {
			continue // the stand-in answer to ANY of RFC 8482, not a record
		}
		out = append(out, Record{Zone: Normalize(z.Name), Name: Normalize(h.Name), Type: mdns.TypeToString[h.Rrtype],
			Value: rdataString(rr), TTL: h.Ttl})
	}
	return out
}

// referral returns the NS records of a referral (a non-authoritative answer with no records and
// NS records in the authority section: the name is delegated to another server), nil otherwise.
func referral(z Zone, r *mdns.Msg) []Record {
	if r.Authoritative || len(r.Answer) > 0 {
		return nil
	}
	var out []Record
	for _, rr := range r.Ns {
		if ns, ok := rr.(*mdns.NS); ok {
			out = append(out, Record{Zone: Normalize(z.Name), Name: Normalize(ns.Hdr.Name), Type: "NS",
				Value: Normalize(ns.Ns), TTL: ns.Hdr.Ttl})
		}
	}
	return out
}

func dedupe(recs []Record) []Record {
	seen := map[string]bool{}
	out := recs[:0]
	for _, r := range recs {
		if k := r.Key(); !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}
