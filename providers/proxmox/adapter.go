package proxmox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	goproxmox "github.com/luthermonson/go-proxmox"
)

// Options configure the adapter. TokenSecret is never printed: String,
// GoString, LogValue and MarshalJSON redact it.
type Options struct {
	// URL of the API, e.g. "https://pve.example.com:8006" (the /api2/json
	// suffix is optional).
	URL string
	// TokenID is "USER@REALM!TOKENID"; TokenSecret the token's UUID.
	TokenID     string
	TokenSecret string
	// CAFile is a PEM bundle of a private CA, added to the system roots.
	CAFile string
	// InsecureSkipVerify turns TLS verification off. Lab use only.
	InsecureSkipVerify bool
	// Timeout per HTTP request; 0 = 60 s.
	Timeout time.Duration
	// UserAgent; "" = "pvectl".
	UserAgent string
	// Observe, when set, is called after every HTTP request the adapter
	// sends (each try of a retried read counts) with the request's method,
	// its endpoint's path template as PVE's API schema names it
	// ("/nodes/{node}/qemu/{vmid}/config": never a concrete node, VMID,
	// UPID or volume, and never a query string or a credential), how long
	// the request took and its error (nil on success; a *Error). It is
	// called from the goroutine that made the request, so it must be safe
	// for concurrent use. pvectl's metrics use it (docs/monitoring.md).
	Observe func(method, template string, d time.Duration, err error)
	// MaxRequestsPerNode, when above 0, is how many requests the adapter
	// keeps in flight at once to any one node (/nodes/{node}/... paths);
	// all other requests count against the endpoint as one more node. A
	// request beyond it waits in the adapter (not counted in Timeout) for
	// a slot or until its context is done. 0 = no limit. pvectl sets it
	// from proxmox.max_requests_per_node (default 4). See nodelimit.go.
	MaxRequestsPerNode int
}

const redacted = "[REDACTED]"

func (o Options) redacted() map[string]any {
	secret := ""
	if o.TokenSecret != "" {
		secret = redacted
	}
	return map[string]any{
		"url": o.URL, "token_id": o.TokenID, "token_secret": secret, "ca_file": o.CAFile,
		"insecure_skip_verify": o.InsecureSkipVerify, "timeout": o.Timeout.String(), "user_agent": o.UserAgent,
		"max_requests_per_node": o.MaxRequestsPerNode,
	}
}

// String describes the options with the secret redacted.
func (o Options) String() string {
	secret := ""
	if o.TokenSecret != "" {
		secret = redacted
	}
	return fmt.Sprintf("Options{URL:%q TokenID:%q TokenSecret:%q CAFile:%q InsecureSkipVerify:%t Timeout:%s UserAgent:%q MaxRequestsPerNode:%d}",
		o.URL, o.TokenID, secret, o.CAFile, o.InsecureSkipVerify, o.Timeout, o.UserAgent, o.MaxRequestsPerNode)
}

// GoString is String, so %#v redacts too.
func (o Options) GoString() string { return o.String() }

// LogValue implements slog.LogValuer.
func (o Options) LogValue() slog.Value {
	r := o.redacted()
	return slog.GroupValue(
		slog.String("url", o.URL), slog.String("token_id", o.TokenID),
		slog.String("token_secret", r["token_secret"].(string)), slog.String("ca_file", o.CAFile),
		slog.Bool("insecure_skip_verify", o.InsecureSkipVerify), slog.Duration("timeout", o.Timeout),
		slog.String("user_agent", o.UserAgent), slog.Int("max_requests_per_node", o.MaxRequestsPerNode),
	)
}

// MarshalJSON redacts the secret (zerolog's Interface, encoding/json, …).
func (o Options) MarshalJSON() ([]byte, error) { return json.Marshal(o.redacted()) }

// Adapter implements Client on go-proxmox.
type Adapter struct {
	c       *goproxmox.Client
	secret  string
	base    string
	retry   readRetry
	observe func(method, template string, d time.Duration, err error)
	limit   *nodeLimiter // nil: no per-node limit
}

var _ Client = (*Adapter)(nil)

// New builds an Adapter. It does not contact PVE.
func New(opts Options) (*Adapter, error) {
	if opts.URL == "" {
		return nil, errorf(ClassInvalid, "new client", "URL is required")
	}
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errorf(ClassInvalid, "new client", "invalid URL %q: want https://host:8006", opts.URL)
	}
	if opts.TokenID == "" || opts.TokenSecret == "" {
		return nil, errorf(ClassInvalid, "new client", "token id and token secret are required")
	}
	if !strings.Contains(opts.TokenID, "@") || !strings.Contains(opts.TokenID, "!") {
		return nil, errorf(ClassInvalid, "new client", "token id %q: want USER@REALM!TOKENID", opts.TokenID)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.InsecureSkipVerify} //nolint:gosec // only when configured
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, errorf(ClassInvalid, "new client", "reading ca_file: %v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errorf(ClassInvalid, "new client", "ca_file %s holds no PEM certificate", opts.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	inner := http.DefaultTransport.(*http.Transport).Clone()
	inner.TLSClientConfig = tlsConf
	// Keep the connections of a pass's concurrent requests: Go's default
	// keeps 2 idle per host, and each one dropped is a new TCP and TLS
	// handshake for pveproxy on the next request.
	inner.MaxIdleConnsPerHost = maxIdleConns
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	hc := &http.Client{Transport: &statusTransport{next: inner}, Timeout: timeout}
	ua := opts.UserAgent
	if ua == "" {
		ua = "pvectl"
	}
	base := strings.TrimRight(opts.URL, "/")
	if !strings.HasSuffix(base, "/api2/json") {
		base += "/api2/json"
	}
	c := goproxmox.NewClient(base,
		goproxmox.WithAPIToken(opts.TokenID, opts.TokenSecret),
		goproxmox.WithHTTPClient(hc),
		goproxmox.WithUserAgent(ua),
	)
	return &Adapter{c: c, secret: opts.TokenSecret, base: base, retry: defaultReadRetry(), observe: opts.Observe,
		limit: newNodeLimiter(opts.MaxRequestsPerNode)}, nil
}

// maxIdleConns is how many idle connections to the API endpoint the
// adapter keeps: a pass sends at most one request per worker at a time
// (tasks.process_vms.concurrency: 8 by default, 40 suggested for 10
// nodes), so this keeps them all.
const maxIdleConns = 64

// String describes the adapter without credentials.
func (a *Adapter) String() string { return "proxmox.Adapter{" + a.base + "}" }

// GoString is String.
func (a *Adapter) GoString() string { return a.String() }

// ---- transport: keep PVE's status code and message ------------------------

// httpError is a non-2xx response. go-proxmox keeps only res.Status for
// 500/501, turns 401/403 into a bare ErrNotAuthorized (losing
// "Permission check failed (…)"), and decodes 595/596 bodies as if they
// were successes; so the transport turns every non-2xx into this error.
type httpError struct {
	status  int
	reason  string
	message string
	fields  map[string]string
}

func (e *httpError) Error() string { return strconv.Itoa(e.status) + " " + e.reason }

type statusTransport struct{ next http.RoundTripper }

func (t *statusTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(req)
	if err != nil || (res.StatusCode >= 200 && res.StatusCode < 300) {
		return res, err
	}
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
	he := &httpError{status: res.StatusCode, reason: strings.TrimSpace(strings.TrimPrefix(res.Status, strconv.Itoa(res.StatusCode)))}
	var b struct {
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors"`
	}
	if json.Unmarshal(body, &b) == nil {
		he.message = strings.TrimRight(b.Message, "\n")
		he.fields = b.Errors
	}
	return nil, he
}

// ---- calls ----------------------------------------------------------------

type callInfo struct {
	method string
	path   string
	tmpl   string // path's template in PVE's API schema: "/nodes/{node}/status"
	node   string
	vmid   int
}

// call sends a request (send), a read possibly more than once (readRetry).
// GET and DELETE parameters go in a query string
// built here (queryString), never through go-proxmox's GetWithParams or
// DeleteWithParams: those round-trip the parameters through JSON into
// float64 and print them with %v, so an integer of 1,000,000 or more goes
// out as "1e+06" and PVE refuses it ("type check ('integer') failed").
// POST and PUT bodies are JSON-encoded by go-proxmox straight from params
// (json.Marshal prints Go integers in decimal), after bodyParams has
// checked their types.
//
// A GET that fails with a ClassTransient error is sent again (readRetry);
// nothing else is ever repeated here.
func (a *Adapter) call(ctx context.Context, ci callInfo, params map[string]any, out any) error {
	if ci.method != http.MethodGet {
		return a.send(ctx, ci, params, out)
	}
	for attempt := 1; ; attempt++ {
		err := a.send(ctx, ci, params, out)
		if err == nil || attempt >= a.retry.attempts || ctx.Err() != nil || Classify(err) != ClassTransient {
			return err
		}
		d := a.retry.delay(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
			return err // no time left for the backoff and another try
		}
		if a.retry.sleep(ctx, d) != nil {
			return err
		}
		resetOut(out)
	}
}

// send sends one request, once, holding a slot of its node
// (Options.MaxRequestsPerNode) for just that round trip, and then tells
// Options.Observe how it went. A context done while waiting for the slot
// returns a ClassTransient error with nothing sent (Applied false) and
// nothing observed.
func (a *Adapter) send(ctx context.Context, ci callInfo, params map[string]any, out any) error {
	release, err := a.limit.acquire(ctx, limitKey(ci.path))
	if err != nil {
		e := a.wrap(err, ci)
		e.Applied = false // never sent
		return e
	}
	countRequest(ctx)
	began := time.Now()
	err = a.sendOnce(ctx, ci, params, out)
	d := time.Since(began)
	release()
	if a.observe != nil {
		a.observe(ci.method, ci.tmpl, d, err)
	}
	return err
}

func (a *Adapter) sendOnce(ctx context.Context, ci callInfo, params map[string]any, out any) error {
	var err error
	switch ci.method {
	case http.MethodGet, http.MethodDelete:
		path := ci.path
		if len(params) > 0 {
			q, qerr := queryString(params)
			if qerr != nil {
				return &Error{Class: ClassInvalid, Op: ci.method + " " + ci.path, Node: ci.node, VMID: ci.vmid, Message: qerr.Error()}
			}
			path += "?" + q
		}
		if ci.method == http.MethodGet {
			err = a.c.Get(ctx, path, out)
		} else {
			err = a.c.Delete(ctx, path, out)
		}
	case http.MethodPost, http.MethodPut:
		body, berr := bodyParams(params)
		if berr != nil {
			return &Error{Class: ClassInvalid, Op: ci.method + " " + ci.path, Node: ci.node, VMID: ci.vmid, Message: berr.Error()}
		}
		if ci.method == http.MethodPost {
			err = a.c.Post(ctx, ci.path, body, out)
		} else {
			err = a.c.Put(ctx, ci.path, body, out)
		}
	default:
		err = fmt.Errorf("unsupported method %s", ci.method)
	}
	if err != nil {
		return a.wrap(err, ci)
	}
	return nil
}

// paramText is a parameter's text as PVE parses it: integers in decimal
// (never an exponent), booleans as 1/0, numbers without exponent.
func paramText(k string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case bool:
		return strconv.Itoa(boolInt(x)), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	default:
		return "", fmt.Errorf("parameter %s: unsupported type %T", k, v)
	}
}

// queryString encodes GET/DELETE parameters (sorted by key).
func queryString(params map[string]any) (string, error) {
	q := make(url.Values, len(params))
	for k, v := range params {
		s, err := paramText(k, v)
		if err != nil {
			return "", err
		}
		q.Set(k, s)
	}
	return q.Encode(), nil
}

// bodyParams is the JSON body of a POST/PUT, nil when there are no
// parameters. Integers stay Go integers (encoded in decimal) and json.Number
// is kept as written; booleans become 1/0 and float64 a decimal
// json.Number, so nothing can reach the wire in exponent form.
func bodyParams(params map[string]any) (any, error) {
	if len(params) == 0 {
		return nil, nil
	}
	body := make(map[string]any, len(params))
	for k, v := range params {
		switch x := v.(type) {
		case string, int, int64, json.Number:
			body[k] = x
		case bool:
			body[k] = boolInt(x)
		case float64:
			body[k] = json.Number(strconv.FormatFloat(x, 'f', -1, 64))
		default:
			return nil, fmt.Errorf("parameter %s: unsupported type %T", k, v)
		}
	}
	return body, nil
}

// wrap turns any failure into a classified *Error without the secret.
func (a *Adapter) wrap(err error, ci callInfo) *Error {
	e := &Error{Op: ci.method + " " + ci.path, Node: ci.node, VMID: ci.vmid}
	var he *httpError
	switch {
	case errors.As(err, &he):
		e.HTTPStatus = he.status
		e.Message = he.reason
		if e.Message == "" || e.Message == http.StatusText(he.status) {
			if he.message != "" {
				e.Message = he.message
			}
		}
		e.Fields = he.fields
		e.Class = ClassifyHTTP(he.status, e.Message, he.fields)
		if e.Class == ClassTransient || e.Class == ClassUnknown {
			// An unmatched status line: the body may carry the real message.
			if c := ClassifyMessage(he.message); c != ClassUnknown {
				e.Class = c
			}
		}
		e.Applied = ci.method != http.MethodGet && httpMaybeApplied(he.status, e.Message)
	case errors.Is(err, goproxmox.ErrNotAuthorized):
		e.Class, e.Message = ClassAuth, err.Error()
	default:
		if c, ok := classifyTransport(err); ok {
			e.Class = c
			e.Applied = c == ClassTransient && ci.method != http.MethodGet && transportMaybeApplied(err)
		} else {
			e.Class = ClassifyMessage(err.Error())
		}
		e.Message = err.Error()
		e.Err = err
	}
	e.Message = a.scrub(e.Message)
	for k, v := range e.Fields {
		e.Fields[k] = a.scrub(v)
	}
	if e.Err != nil {
		e.Err = scrubbedError{msg: a.scrub(e.Err.Error()), err: e.Err}
	}
	return e
}

func (a *Adapter) scrub(s string) string {
	if a.secret == "" {
		return s
	}
	return strings.ReplaceAll(s, a.secret, redacted)
}

// scrubbedError keeps errors.Is/As working on the cause while its text has
// the secret removed.
type scrubbedError struct {
	msg string
	err error
}

func (s scrubbedError) Error() string { return s.msg }
func (s scrubbedError) Unwrap() error { return s.err }

// task decodes a UPID response into a TaskRef.
func (a *Adapter) task(ctx context.Context, ci callInfo, params map[string]any) (TaskRef, error) {
	var upid *string
	if err := a.call(ctx, ci, params, &upid); err != nil {
		return TaskRef{}, err
	}
	if upid == nil || *upid == "" {
		return TaskRef{}, nil // PVE did it synchronously (resize on 7.x, delete with delay)
	}
	ref, _, _, err := ParseUPID(*upid)
	if err != nil {
		return TaskRef{}, &Error{Class: ClassUnknown, Op: ci.method + " " + ci.path, Node: ci.node, VMID: ci.vmid,
			Message: fmt.Sprintf("PVE returned %q instead of a task UPID", *upid)}
	}
	return ref, nil
}

// vmCall is a call to /nodes/{node}/qemu/{vmid} followed by suffix, a
// path template whose placeholders ("/firewall/ipset/{name}") args fill in
// order, path-escaped.
func vmCall(method string, vm VMRef, suffix string, args ...string) callInfo {
	tmpl := "/nodes/{node}/qemu/{vmid}" + suffix
	path := fillPath(tmpl, append([]string{vm.Node, strconv.Itoa(vm.VMID)}, args...))
	return callInfo{method: method, path: path, tmpl: tmpl, node: vm.Node, vmid: vm.VMID}
}

// fillPath replaces tmpl's {placeholders}, in order, with args,
// path-escaped. The count must match: a mismatch is a bug in the caller.
func fillPath(tmpl string, args []string) string {
	var b strings.Builder
	rest := tmpl
	for _, arg := range args {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest, '}')
		if i < 0 || j < i {
			panic("proxmox: more arguments than placeholders in " + tmpl)
		}
		b.WriteString(rest[:i])
		b.WriteString(url.PathEscape(arg))
		rest = rest[j+1:]
	}
	if strings.IndexByte(rest, '{') >= 0 {
		panic("proxmox: fewer arguments than placeholders in " + tmpl)
	}
	b.WriteString(rest)
	return b.String()
}

func checkVM(op string, vm VMRef) error {
	if vm.Node == "" || vm.VMID < 100 {
		return &Error{Class: ClassInvalid, Op: op, Node: vm.Node, VMID: vm.VMID, Message: "node and a VMID >= 100 are required"}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }
