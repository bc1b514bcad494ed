package dns

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultTimeout bounds one exchange (one UDP or TCP round trip) when Updater.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// tsigFudge is the allowed clock difference, in seconds, of a signed message (RFC 8945 default).
const tsigFudge = 300

// Updater sends RFC 2136 updates and queries to the servers of its zones.
// It is safe for concurrent use; the zero value knows no zones.
type Updater struct {
	zones   map[string]Zone
	Timeout time.Duration // per exchange; 0 means DefaultTimeout. A context deadline also applies.
	// Now returns the time used to sign messages; nil means time.Now.
	Now func() time.Time
}

// NewUpdater returns an Updater for the given zones (matched by normalised name; a later
// duplicate replaces an earlier one). Zones are validated when used, so that a broken zone
// fails only its own records.
func NewUpdater(zones []Zone) *Updater {
	u := &Updater{zones: make(map[string]Zone, len(zones))}
	for _, z := range zones {
		u.zones[Normalize(z.Name)] = z
	}
	return u
}

// Zone returns the configured zone with this name.
func (u *Updater) Zone(name string) (Zone, bool) {
	z, ok := u.zones[Normalize(name)]
	return z, ok
}

// Publish makes sure rec is present in its zone. It is idempotent and touches nothing else: one
// signed update message deletes exactly this RR (if present) and adds it again with its TTL, so
// re-publishing never duplicates it and other records at the same name (an operator's, or
// other addresses of the same VM) stay as they are.
func (u *Updater) Publish(ctx context.Context, rec Record) error {
	z, err := u.lookup("update", rec.Zone)
	if err != nil {
		return err
	}
	del, err := buildRR(z, rec)
	if err != nil {
		return err
	}
	add, _ := buildRR(z, rec)
	m := new(mdns.Msg)
	m.SetUpdate(mdns.Fqdn(Normalize(z.Name)))
	m.Remove([]mdns.RR{del})
	m.Insert([]mdns.RR{add})
	return u.update(ctx, z, m)
}

// Delete removes exactly rec (name, type and value) from its zone; other records at the same
// name are left alone. Deleting a record that is not there succeeds.
func (u *Updater) Delete(ctx context.Context, rec Record) error {
	z, err := u.lookup("update", rec.Zone)
	if err != nil {
		return err
	}
	del, err := buildRR(z, rec)
	if err != nil {
		return err
	}
	m := new(mdns.Msg)
	m.SetUpdate(mdns.Fqdn(Normalize(z.Name)))
	m.Remove([]mdns.RR{del})
	return u.update(ctx, z, m)
}

// CheckName is the owner name (below the zone apex) of Check's no-op update.
const CheckName = "pvectl-check"

// Check verifies that zone is served and accepts pvectl's signed updates: it queries the zone's
// SOA (the answer must be authoritative) and then sends a TSIG-signed update that changes
// nothing (prerequisite "name pvectl-check.<zone> does not exist", update "delete its A (or PTR)
// RRset"). It returns nil, or an *Error saying what failed: unreachable, timeout, REFUSED,
// NOTAUTH, NOTAUTH (BADSIG), NOTAUTH (BADKEY), ...
func (u *Updater) Check(ctx context.Context, zone string) error {
	z, err := u.lookup("check", zone)
	if err != nil {
		return err
	}
	if err := z.Validate(); err != nil {
		return u.errConfig("check", z, err.Error())
	}
	apex := mdns.Fqdn(Normalize(z.Name))
	q := new(mdns.Msg)
	q.SetQuestion(apex, mdns.TypeSOA)
	q.RecursionDesired = false
	q.SetEdns0(4096, false)
	r, err := u.exchange(ctx, z, "check", q, false)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Rcode >= 0 && e.Msg == "" {
			e.Msg = "SOA query"
		}
		return err
	}
	if !r.Authoritative {
		return &Error{Op: "check", Zone: Normalize(z.Name), Server: z.Server, Kind: KindNotAuth, Rcode: r.Rcode,
			Msg: "SOA answer is not authoritative: the server does not serve the zone"}
	}
	hasSOA := false
	for _, rr := range r.Answer {
		if soa, ok := rr.(*mdns.SOA); ok && strings.EqualFold(soa.Hdr.Name, apex) {
			hasSOA = true
		}
	}
	if !hasSOA {
		return &Error{Op: "check", Zone: Normalize(z.Name), Server: z.Server, Kind: KindNotAuth, Rcode: r.Rcode,
			Msg: "no SOA at the zone apex: the name is not a zone on this server"}
	}

	typ := mdns.TypeA
	if z.IsReverse() {
		typ = mdns.TypePTR
	}
	probe := &mdns.ANY{Hdr: mdns.RR_Header{Name: CheckName + "." + apex, Rrtype: typ, Class: mdns.ClassINET}}
	m := new(mdns.Msg)
	m.SetUpdate(apex)
	m.NameNotUsed([]mdns.RR{probe})
	m.RemoveRRset([]mdns.RR{probe})
	if err := u.update(ctx, z, m); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Op = "check"
		}
		return err
	}
	return nil
}

// Query asks the zone's server for name/type (unsigned, not recursive) and returns the answer
// records (those owned by name with that type). A name that does not exist gives no records and
// no error.
func (u *Updater) Query(ctx context.Context, zone, name, typ string) ([]Record, error) {
	z, err := u.lookup("query", zone)
	if err != nil {
		return nil, err
	}
	t, ok := mdns.StringToType[strings.ToUpper(typ)]
	if !ok {
		return nil, u.errConfig("query", z, fmt.Sprintf("unknown record type %q", typ))
	}
	owner := mdns.Fqdn(Normalize(name))
	q := new(mdns.Msg)
	q.SetQuestion(owner, t)
	q.RecursionDesired = false
	q.SetEdns0(4096, false)
	r, err := u.exchange(ctx, z, "query", q, false)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Rcode == mdns.RcodeNameError {
			return nil, nil
		}
		return nil, err
	}
	var out []Record
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Rrtype != t || !strings.EqualFold(h.Name, owner) {
			continue
		}
		out = append(out, Record{Zone: Normalize(z.Name), Name: Normalize(h.Name), Type: mdns.TypeToString[t], Value: rdataString(rr), TTL: h.Ttl})
	}
	return out, nil
}

func rdataString(rr mdns.RR) string {
	switch v := rr.(type) {
	case *mdns.A:
		if ip, ok := netip.AddrFromSlice(v.A); ok {
			return ip.Unmap().String()
		}
	case *mdns.AAAA:
		if ip, ok := netip.AddrFromSlice(v.AAAA); ok {
			return ip.String()
		}
	case *mdns.PTR:
		return Normalize(v.Ptr)
	case *mdns.CNAME:
		return Normalize(v.Target)
	case *mdns.NS:
		return Normalize(v.Ns)
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}

func (u *Updater) lookup(op, zone string) (Zone, error) {
	z, ok := u.zones[Normalize(zone)]
	if !ok {
		return Zone{}, &Error{Op: op, Zone: Normalize(zone), Kind: KindConfig, Rcode: -1, Msg: "zone is not configured"}
	}
	return z, nil
}

func (u *Updater) errConfig(op string, z Zone, msg string) *Error {
	return &Error{Op: op, Zone: Normalize(z.Name), Server: z.Server, Kind: KindConfig, Rcode: -1, Msg: msg}
}

// buildRR makes the RR of rec, checking that it belongs to zone z.
func buildRR(z Zone, rec Record) (mdns.RR, error) {
	name := Normalize(rec.Name)
	if !InZone(name, z.Name) {
		return nil, &Error{Op: "update", Zone: Normalize(z.Name), Server: z.Server, Kind: KindConfig, Rcode: -1,
			Msg: fmt.Sprintf("record %s is outside zone %s", name, Normalize(z.Name))}
	}
	ttl := rec.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	hdr := mdns.RR_Header{Name: mdns.Fqdn(name), Class: mdns.ClassINET, Ttl: ttl}
	bad := func(msg string) error {
		return &Error{Op: "update", Zone: Normalize(z.Name), Server: z.Server, Kind: KindConfig, Rcode: -1, Msg: msg}
	}
	typ := strings.ToUpper(strings.TrimSpace(rec.Type))
	value := strings.TrimSpace(rec.Value)
	switch typ {
	case "A", "AAAA":
		ip, err := netip.ParseAddr(value)
		if err != nil {
			return nil, bad(fmt.Sprintf("record %s %s: invalid address %q", name, typ, value))
		}
		ip = ip.WithZone("").Unmap()
		if typ == "A" {
			if !ip.Is4() {
				return nil, bad(fmt.Sprintf("record %s A: %s is not an IPv4 address", name, ip))
			}
			hdr.Rrtype = mdns.TypeA
			return &mdns.A{Hdr: hdr, A: net.IP(ip.AsSlice())}, nil
		}
		if !ip.Is6() {
			return nil, bad(fmt.Sprintf("record %s AAAA: %s is not an IPv6 address", name, ip))
		}
		hdr.Rrtype = mdns.TypeAAAA
		return &mdns.AAAA{Hdr: hdr, AAAA: net.IP(ip.AsSlice())}, nil
	case "PTR":
		target := Normalize(value)
		if target == "" {
			return nil, bad(fmt.Sprintf("record %s PTR: empty target", name))
		}
		if _, ok := mdns.IsDomainName(target); !ok {
			return nil, bad(fmt.Sprintf("record %s PTR: invalid target %q", name, value))
		}
		hdr.Rrtype = mdns.TypePTR
		return &mdns.PTR{Hdr: hdr, Ptr: mdns.Fqdn(target)}, nil
	case "":
		return nil, bad(fmt.Sprintf("record %s: empty type", name))
	}
	rr, err := mdns.NewRR(fmt.Sprintf("%s %d IN %s %s", mdns.Fqdn(name), ttl, typ, value))
	if err != nil || rr == nil {
		return nil, bad(fmt.Sprintf("record %s %s %q: cannot parse", name, typ, value))
	}
	return rr, nil
}

// update signs m with the zone's key, sends it, and classifies the reply.
func (u *Updater) update(ctx context.Context, z Zone, m *mdns.Msg) error {
	if err := z.Validate(); err != nil {
		return u.errConfig("update", z, err.Error())
	}
	_, err := u.exchange(ctx, z, "update", m, true)
	return err
}

// exchange sends m over UDP (TCP if the UDP reply is truncated), optionally TSIG-signed, and
// returns the reply when its RCODE is NOERROR; otherwise a classified *Error.
func (u *Updater) exchange(ctx context.Context, z Zone, op string, m *mdns.Msg, sign bool) (*mdns.Msg, error) {
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	zoneName := Normalize(z.Name)
	mkErr := func(kind Kind, rcode int, tsigErr uint16, msg string, err error) *Error {
		return &Error{Op: op, Zone: zoneName, Server: z.Server, Kind: kind, Rcode: rcode, TSIGError: tsigErr, Msg: msg, Err: err}
	}
	var prov *tsigKey
	if sign {
		alg, err := canonicalAlgorithm(z.Algorithm)
		if err != nil {
			return nil, mkErr(KindConfig, -1, 0, err.Error(), nil)
		}
		secret, err := decodeSecret(z.Secret)
		if err != nil {
			return nil, mkErr(KindConfig, -1, 0, err.Error(), nil)
		}
		prov = &tsigKey{secret: secret}
		now := time.Now
		if u.Now != nil {
			now = u.Now
		}
		m.SetTsig(mdns.Fqdn(Normalize(z.KeyName)), alg, tsigFudge, now().Unix())
	}
	var r *mdns.Msg
	for _, network := range []string{"udp", "tcp"} {
		if err := ctx.Err(); err != nil {
			return nil, mkErr(classifyNetErr(ctx, err), -1, 0, "", err)
		}
		c := &mdns.Client{Net: network, Timeout: timeout, UDPSize: 4096}
		if prov != nil {
			c.TsigProvider = prov
		}
		// Send a copy: signing strips the TSIG record from the message it
		// is given, so a TCP retry of the same message would go unsigned.
		var err error
		r, _, err = c.ExchangeContext(ctx, m.Copy(), z.Server)
		if r == nil {
			if err == nil {
				err = errors.New("empty reply")
			}
			return nil, mkErr(classifyNetErr(ctx, err), -1, 0, "", err)
		}
		if r.Truncated && network == "udp" {
			continue // retry the same message over TCP
		}
		// miekg/dns returns the reply together with an error when the reply's TSIG does not
		// verify; servers answer BADSIG/BADKEY with an unsigned TSIG, so look at the reply first.
		kind, tsigErr := classifyReply(r)
		if kind != "" {
			msg := ""
			if kind == KindRcode {
				if tsigErr != 0 {
					msg = "TSIG error " + rcodeName(int(tsigErr))
				}
			}
			return nil, mkErr(kind, r.Rcode, tsigErr, msg, nil)
		}
		if err != nil {
			return nil, mkErr(KindBadReply, r.Rcode, 0, "reply does not verify", err)
		}
		if sign && r.IsTsig() == nil {
			return nil, mkErr(KindBadReply, r.Rcode, 0, "reply to a signed message is not signed", nil)
		}
		return r, nil
	}
	return nil, mkErr(KindBadReply, r.Rcode, 0, "truncated reply over TCP", nil)
}

// tsigKey signs and verifies with one HMAC secret. It never prints the secret.
type tsigKey struct{ secret []byte }

func (k *tsigKey) String() string { return "tsig-key([redacted])" }

func (k *tsigKey) mac(msg []byte, t *mdns.TSIG) ([]byte, error) {
	var h hash.Hash
	switch mdns.CanonicalName(t.Algorithm) {
	case mdns.HmacSHA1:
		h = hmac.New(sha1.New, k.secret)
	case mdns.HmacSHA224:
		h = hmac.New(sha256.New224, k.secret)
	case mdns.HmacSHA256:
		h = hmac.New(sha256.New, k.secret)
	case mdns.HmacSHA384:
		h = hmac.New(sha512.New384, k.secret)
	case mdns.HmacSHA512:
		h = hmac.New(sha512.New, k.secret)
	default:
		return nil, mdns.ErrKeyAlg
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

// Generate implements mdns.TsigProvider.
func (k *tsigKey) Generate(msg []byte, t *mdns.TSIG) ([]byte, error) { return k.mac(msg, t) }

// Verify implements mdns.TsigProvider.
func (k *tsigKey) Verify(msg []byte, t *mdns.TSIG) error {
	want, err := k.mac(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil {
		return mdns.ErrSig
	}
	if !hmac.Equal(want, got) {
		return mdns.ErrSig
	}
	return nil
}

var algorithms = map[string]string{
	"hmac-sha1":   mdns.HmacSHA1,
	"hmac-sha224": mdns.HmacSHA224,
	"hmac-sha256": mdns.HmacSHA256,
	"hmac-sha384": mdns.HmacSHA384,
	"hmac-sha512": mdns.HmacSHA512,
}

// canonicalAlgorithm maps "hmac-sha256", "HMAC-SHA256.", "sha256" or "" to miekg's FQDN form.
func canonicalAlgorithm(a string) (string, error) {
	n := Normalize(a)
	if n == "" {
		n = DefaultAlgorithm
	}
	if !strings.HasPrefix(n, "hmac-") {
		n = "hmac-" + n
	}
	if fq, ok := algorithms[n]; ok {
		return fq, nil
	}
	return "", fmt.Errorf("unsupported TSIG algorithm %q (use hmac-sha256, hmac-sha512, hmac-sha384, hmac-sha224 or hmac-sha1)", a)
}

// decodeSecret decodes a base64 TSIG secret. Its error never contains the secret.
func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty TSIG secret")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) > 0 {
			return b, nil
		}
	}
	return nil, fmt.Errorf("TSIG secret is not valid base64 (%d characters)", len(s))
}
