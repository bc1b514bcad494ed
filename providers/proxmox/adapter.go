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
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"reflect"
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
	}
}

// String describes the options with the secret redacted.
func (o Options) String() string {
	secret := ""
	if o.TokenSecret != "" {
		secret = redacted
	}
	return fmt.Sprintf("Options{URL:%q TokenID:%q TokenSecret:%q CAFile:%q InsecureSkipVerify:%t Timeout:%s UserAgent:%q}",
		o.URL, o.TokenID, secret, o.CAFile, o.InsecureSkipVerify, o.Timeout, o.UserAgent)
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
		slog.String("user_agent", o.UserAgent),
	)
}

// MarshalJSON redacts the secret (zerolog's Interface, encoding/json, …).
func (o Options) MarshalJSON() ([]byte, error) { return json.Marshal(o.redacted()) }

// Adapter implements Client on go-proxmox.
type Adapter struct {
	c      *goproxmox.Client
	secret string
	base   string
	retry  readRetry
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
	return &Adapter{c: c, secret: opts.TokenSecret, base: base, retry: defaultReadRetry()}, nil
}

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

// ---- read retries ---------------------------------------------------------

// ReadAttempts is how many times in all the adapter sends a GET that keeps
// failing with a ClassTransient error. A fault injected into a read must
// fail that many calls to reach the caller.
const ReadAttempts = 3

// Backoff between read attempts: readBackoffBase, doubled after each try and
// capped at readBackoffMax, jittered to between half of that and all of it.
const (
	readBackoffBase = 100 * time.Millisecond
	readBackoffMax  = 500 * time.Millisecond
)

// readRetry retries idempotent reads (GET only) that failed with a
// ClassTransient error (5xx without a known message, 502/503/504/429,
// 595/596, refused/reset connections, timeouts), so that a single glitch
// does not cost a pipeline step its backoff (minutes). Every other class is
// returned at once: permission, auth, not found, invalid, and ClassLocked (a
// config lock is something to wait for across ticks, not a read glitch).
// It never waits past the context: a cancelled context, or a deadline
// closer than the next backoff, returns the last error.
type readRetry struct {
	attempts  int
	base, max time.Duration
	// sleep waits d or until ctx is done (then it returns ctx.Err()).
	sleep func(ctx context.Context, d time.Duration) error
	// jitter picks the actual wait for a backoff of d.
	jitter func(d time.Duration) time.Duration
}

func defaultReadRetry() readRetry {
	return readRetry{attempts: ReadAttempts, base: readBackoffBase, max: readBackoffMax, sleep: sleepCtx, jitter: halfJitter}
}

// delay is the wait after the attempt-th failed try (1-based).
func (r readRetry) delay(attempt int) time.Duration {
	d := r.base
	for i := 1; i < attempt && d < r.max; i++ {
		d *= 2
	}
	d = min(d, r.max)
	if r.jitter != nil {
		d = r.jitter(d)
	}
	return d
}

// halfJitter returns a random duration in [d/2, d].
func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// resetOut zeroes what a failed try may have decoded into out.
func resetOut(out any) {
	if v := reflect.ValueOf(out); v.Kind() == reflect.Pointer && !v.IsNil() {
		v.Elem().SetZero()
	}
}

// send sends one request, once.
func (a *Adapter) send(ctx context.Context, ci callInfo, params map[string]any, out any) error {
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

func vmPath(vm VMRef, suffix string) string {
	return "/nodes/" + url.PathEscape(vm.Node) + "/qemu/" + strconv.Itoa(vm.VMID) + suffix
}

func vmCall(method string, vm VMRef, suffix string) callInfo {
	return callInfo{method: method, path: vmPath(vm, suffix), node: vm.Node, vmid: vm.VMID}
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

// ---- flexible JSON scalars (PVE types numbers and booleans loosely) -------

type flexNum float64

func (f *flexNum) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = flexNum(v)
	return nil
}

type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "1", "true":
		*f = true
	case "0", "false", "", "null":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

// flexStr accepts any JSON scalar and keeps its text.
type flexStr string

func (f *flexStr) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = flexStr(s)
		return nil
	}
	if string(b) == "null" {
		*f = ""
		return nil
	}
	*f = flexStr(strings.TrimSpace(string(b)))
	return nil
}

func unixTime(n flexNum) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(int64(n), 0).UTC()
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' })
}

// ---- cluster, nodes, storage ----------------------------------------------

type resourceJSON struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	VMID     flexNum  `json:"vmid"`
	Name     string   `json:"name"`
	Node     string   `json:"node"`
	Status   string   `json:"status"`
	Lock     string   `json:"lock"`
	Tags     string   `json:"tags"`
	Pool     string   `json:"pool"`
	Template flexBool `json:"template"`
	HAState  string   `json:"hastate"`
	Storage  string   `json:"storage"`
	Content  string   `json:"content"`
	Shared   flexBool `json:"shared"`
	CPU      flexNum  `json:"cpu"`
	MaxCPU   flexNum  `json:"maxcpu"`
	Mem      flexNum  `json:"mem"`
	MaxMem   flexNum  `json:"maxmem"`
	Disk     flexNum  `json:"disk"`
	MaxDisk  flexNum  `json:"maxdisk"`
	Uptime   flexNum  `json:"uptime"`
}

// ClusterResources implements Client.
func (a *Adapter) ClusterResources(ctx context.Context, kind ResourceType) ([]Resource, error) {
	var params map[string]any
	if kind != ResourceAll {
		params = map[string]any{"type": string(kind)}
	}
	var raw []resourceJSON
	if err := a.call(ctx, callInfo{method: http.MethodGet, path: "/cluster/resources"}, params, &raw); err != nil {
		return nil, err
	}
	out := make([]Resource, 0, len(raw))
	for _, r := range raw {
		out = append(out, Resource{
			ID: r.ID, Type: r.Type, VMID: int(r.VMID), Name: r.Name, Node: r.Node, Status: r.Status,
			Lock: r.Lock, Tags: splitTags(r.Tags), Pool: r.Pool, Template: bool(r.Template), HAState: r.HAState,
			Storage: r.Storage, Content: splitList(r.Content), Shared: bool(r.Shared),
			CPU: float64(r.CPU), MaxCPU: float64(r.MaxCPU), Mem: int64(r.Mem), MaxMem: int64(r.MaxMem),
			Disk: int64(r.Disk), MaxDisk: int64(r.MaxDisk), Uptime: time.Duration(r.Uptime) * time.Second,
		})
	}
	return out, nil
}

// NodeStatus implements Client.
func (a *Adapter) NodeStatus(ctx context.Context, node string) (NodeStatus, error) {
	var raw struct {
		CPU    flexNum `json:"cpu"`
		Uptime flexNum `json:"uptime"`
		Memory struct {
			Total flexNum `json:"total"`
			Used  flexNum `json:"used"`
			Free  flexNum `json:"free"`
		} `json:"memory"`
		CPUInfo struct {
			CPUs flexNum `json:"cpus"`
		} `json:"cpuinfo"`
		PVEVersion string `json:"pveversion"`
	}
	ci := callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(node) + "/status", node: node}
	if node == "" {
		return NodeStatus{}, errorf(ClassInvalid, "node status", "node is required")
	}
	if err := a.call(ctx, ci, nil, &raw); err != nil {
		return NodeStatus{}, err
	}
	free := int64(raw.Memory.Free)
	if free == 0 && raw.Memory.Total > 0 {
		free = int64(raw.Memory.Total - raw.Memory.Used)
	}
	return NodeStatus{
		Node: node, MemoryTotal: int64(raw.Memory.Total), MemoryUsed: int64(raw.Memory.Used), MemoryFree: free,
		CPU: float64(raw.CPU), CPUs: int(raw.CPUInfo.CPUs), Uptime: time.Duration(raw.Uptime) * time.Second,
		PVEVersion: raw.PVEVersion,
	}, nil
}

// StorageStatus implements Client.
func (a *Adapter) StorageStatus(ctx context.Context, node, storage string) (StorageStatus, error) {
	var raw struct {
		Type    string   `json:"type"`
		Content string   `json:"content"`
		Total   flexNum  `json:"total"`
		Used    flexNum  `json:"used"`
		Avail   flexNum  `json:"avail"`
		Enabled flexBool `json:"enabled"`
		Active  flexBool `json:"active"`
		Shared  flexBool `json:"shared"`
	}
	if node == "" || storage == "" {
		return StorageStatus{}, errorf(ClassInvalid, "storage status", "node and storage are required")
	}
	ci := callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(node) + "/storage/" + url.PathEscape(storage) + "/status", node: node}
	if err := a.call(ctx, ci, nil, &raw); err != nil {
		return StorageStatus{}, err
	}
	return StorageStatus{
		Node: node, Storage: storage, Type: raw.Type, Content: splitList(raw.Content),
		Total: int64(raw.Total), Used: int64(raw.Used), Avail: int64(raw.Avail),
		Enabled: bool(raw.Enabled), Active: bool(raw.Active), Shared: bool(raw.Shared),
	}, nil
}

// ---- VM state and config --------------------------------------------------

// VMStatus implements Client.
func (a *Adapter) VMStatus(ctx context.Context, vm VMRef) (VMStatus, error) {
	if err := checkVM("vm status", vm); err != nil {
		return VMStatus{}, err
	}
	var raw struct {
		Name      string   `json:"name"`
		Status    string   `json:"status"`
		QMPStatus string   `json:"qmpstatus"`
		Lock      string   `json:"lock"`
		Tags      string   `json:"tags"`
		Template  flexBool `json:"template"` // present only as 1 (go-proxmox reads any value as true)
		CPUs      flexNum  `json:"cpus"`
		MaxMem    flexNum  `json:"maxmem"`
		Mem       flexNum  `json:"mem"`
		MaxDisk   flexNum  `json:"maxdisk"`
		Uptime    flexNum  `json:"uptime"`
		HA        struct {
			Managed flexBool `json:"managed"`
		} `json:"ha"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/status/current"), nil, &raw); err != nil {
		return VMStatus{}, err
	}
	return VMStatus{
		VM: vm, Name: raw.Name, Status: raw.Status, QMPStatus: raw.QMPStatus, Lock: raw.Lock,
		Tags: splitTags(raw.Tags), Template: bool(raw.Template), CPUs: int(raw.CPUs),
		MaxMem: int64(raw.MaxMem), Mem: int64(raw.Mem), MaxDisk: int64(raw.MaxDisk),
		Uptime: time.Duration(raw.Uptime) * time.Second, HAManaged: bool(raw.HA.Managed),
	}, nil
}

// VMConfig implements Client.
func (a *Adapter) VMConfig(ctx context.Context, vm VMRef) (VMConfig, error) {
	if err := checkVM("vm config", vm); err != nil {
		return VMConfig{}, err
	}
	var raw map[string]flexStr
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/config"), nil, &raw); err != nil {
		return VMConfig{}, err
	}
	cfg := VMConfig{VM: vm, Values: make(map[string]string, len(raw))}
	for k, v := range raw {
		if k == "digest" {
			cfg.Digest = string(v)
			continue
		}
		cfg.Values[k] = string(v)
	}
	return cfg, nil
}

// qemuConfigTypes are the non-string keys of the qemu config endpoints in
// the PVE 8.4/9.x schema; their values are sent as JSON numbers.
var qemuConfigTypes = map[string]string{
	"acpi": "boolean", "autostart": "boolean", "balloon": "integer", "ciupgrade": "boolean",
	"cores": "integer", "cpulimit": "number", "cpuunits": "integer", "freeze": "boolean",
	"keephugepages": "boolean", "kvm": "boolean", "localtime": "boolean", "migrate_downtime": "number",
	"migrate_speed": "integer", "numa": "boolean", "onboot": "boolean", "protection": "boolean",
	"reboot": "boolean", "shares": "integer", "smp": "integer", "sockets": "integer",
	"tablet": "boolean", "tdf": "boolean", "template": "boolean", "vcpus": "integer",
}

func configParams(ch ConfigChange) (map[string]any, error) {
	p := make(map[string]any, len(ch.Set)+3)
	for k, v := range ch.Set {
		switch qemuConfigTypes[k] {
		case "integer", "boolean":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, errorf(ClassInvalid, "config", "%s: %q is not an integer", k, v)
			}
			p[k] = n
		case "number":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, errorf(ClassInvalid, "config", "%s: %q is not a number", k, v)
			}
			p[k] = json.Number(strconv.FormatFloat(f, 'f', -1, 64))
		default:
			p[k] = v
		}
	}
	if len(ch.Delete) > 0 {
		p["delete"] = strings.Join(ch.Delete, ",")
	}
	if ch.Digest != "" {
		p["digest"] = ch.Digest
	}
	if ch.SkipLock {
		p["skiplock"] = 1
	}
	return p, nil
}

// SetConfig implements Client.
func (a *Adapter) SetConfig(ctx context.Context, vm VMRef, change ConfigChange) (TaskRef, error) {
	if err := checkVM("set config", vm); err != nil {
		return TaskRef{}, err
	}
	p, err := configParams(change)
	if err != nil {
		return TaskRef{}, err
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/config"), p)
}

// SetConfigSync implements Client.
func (a *Adapter) SetConfigSync(ctx context.Context, vm VMRef, change ConfigChange) error {
	if err := checkVM("set config", vm); err != nil {
		return err
	}
	p, err := configParams(change)
	if err != nil {
		return err
	}
	return a.call(ctx, vmCall(http.MethodPut, vm, "/config"), p, nil)
}

// SetCloudInit implements Client.
func (a *Adapter) SetCloudInit(ctx context.Context, vm VMRef, ci CloudInit) error {
	v := ci.Values()
	if len(v) == 0 {
		return nil
	}
	return a.SetConfigSync(ctx, vm, ConfigChange{Set: v})
}

// ---- clone, resize, migrate, power, delete --------------------------------

// Clone implements Client.
func (a *Adapter) Clone(ctx context.Context, req CloneRequest) (TaskRef, error) {
	if err := checkVM("clone", req.Source); err != nil {
		return TaskRef{}, err
	}
	if req.NewID < 100 {
		return TaskRef{}, &Error{Class: ClassInvalid, Op: "clone", Node: req.Source.Node, VMID: req.Source.VMID, Message: "NewID >= 100 is required"}
	}
	p := map[string]any{"newid": req.NewID}
	for k, v := range map[string]string{"name": req.Name, "description": req.Description, "pool": req.Pool,
		"target": req.Target, "storage": req.Storage, "format": req.Format} {
		if v != "" {
			p[k] = v
		}
	}
	switch req.Mode {
	case CloneLinked:
		p["full"] = 0
	case CloneFull:
		p["full"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, req.Source, "/clone"), p)
}

// ResizeDisk implements Client.
func (a *Adapter) ResizeDisk(ctx context.Context, vm VMRef, disk, size string) (TaskRef, error) {
	if err := checkVM("resize", vm); err != nil {
		return TaskRef{}, err
	}
	return a.task(ctx, vmCall(http.MethodPut, vm, "/resize"), map[string]any{"disk": disk, "size": size})
}

// Migrate implements Client.
func (a *Adapter) Migrate(ctx context.Context, req MigrateRequest) (TaskRef, error) {
	if err := checkVM("migrate", req.VM); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{"target": req.Target}
	if req.TargetStorage != "" {
		p["targetstorage"] = req.TargetStorage
	}
	if req.BWLimitKiB > 0 {
		p["bwlimit"] = req.BWLimitKiB
	}
	return a.task(ctx, vmCall(http.MethodPost, req.VM, "/migrate"), p)
}

// Start implements Client.
func (a *Adapter) Start(ctx context.Context, vm VMRef, opts StartOptions) (TaskRef, error) {
	if err := checkVM("start", vm); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{}
	if opts.Timeout > 0 {
		p["timeout"] = seconds(opts.Timeout)
	}
	if opts.SkipLock {
		p["skiplock"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/status/start"), p)
}

// Shutdown implements Client.
func (a *Adapter) Shutdown(ctx context.Context, vm VMRef, opts ShutdownOptions) (TaskRef, error) {
	if err := checkVM("shutdown", vm); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{}
	if opts.Timeout > 0 {
		p["timeout"] = seconds(opts.Timeout)
	}
	if opts.ForceStop {
		p["forceStop"] = 1
	}
	if opts.SkipLock {
		p["skiplock"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/status/shutdown"), p)
}

// Stop implements Client.
func (a *Adapter) Stop(ctx context.Context, vm VMRef, opts StopOptions) (TaskRef, error) {
	if err := checkVM("stop", vm); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{}
	if opts.Timeout > 0 {
		p["timeout"] = seconds(opts.Timeout)
	}
	if opts.SkipLock {
		p["skiplock"] = 1
	}
	if opts.OverruleShutdown {
		p["overrule-shutdown"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/status/stop"), p)
}

// Delete implements Client.
func (a *Adapter) Delete(ctx context.Context, vm VMRef, opts DeleteOptions) (TaskRef, error) {
	if err := checkVM("delete", vm); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{}
	if opts.Purge {
		p["purge"] = 1
	}
	if opts.DestroyUnreferencedDisks {
		p["destroy-unreferenced-disks"] = 1
	}
	if opts.SkipLock {
		p["skiplock"] = 1
	}
	return a.task(ctx, vmCall(http.MethodDelete, vm, ""), p)
}

// ---- tasks ----------------------------------------------------------------

func taskCall(t TaskRef, suffix string) (callInfo, error) {
	if t.UPID == "" || t.Node == "" {
		return callInfo{}, errorf(ClassInvalid, "task", "task reference needs node and UPID")
	}
	if _, _, _, err := ParseUPID(t.UPID); err != nil {
		return callInfo{}, err
	}
	// The UPID goes into the path as is (':', '@', '!' are valid there),
	// as PVE's own clients send it.
	return callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(t.Node) + "/tasks/" + t.UPID + suffix, node: t.Node}, nil
}

// TaskStatus implements Client. It decodes the status itself: go-proxmox's
// Task panics on a string starttime and counts WARNINGS as failure.
func (a *Adapter) TaskStatus(ctx context.Context, t TaskRef) (TaskStatus, error) {
	ci, err := taskCall(t, "/status")
	if err != nil {
		return TaskStatus{}, err
	}
	var raw struct {
		Type       string  `json:"type"`
		ID         flexStr `json:"id"`
		User       string  `json:"user"`
		TokenID    string  `json:"tokenid"`
		Status     string  `json:"status"`
		ExitStatus string  `json:"exitstatus"`
		StartTime  flexNum `json:"starttime"`
	}
	if err := a.call(ctx, ci, nil, &raw); err != nil {
		return TaskStatus{}, err
	}
	user := raw.User
	if raw.TokenID != "" {
		user += "!" + raw.TokenID
	}
	st := TaskStatus{Task: t, Type: raw.Type, ID: string(raw.ID), User: user,
		ExitStatus: raw.ExitStatus, StartTime: unixTime(raw.StartTime)}
	switch raw.Status {
	case "running":
		st.Running = true
	case "stopped":
	default:
		return TaskStatus{}, &Error{Class: ClassUnknown, Op: ci.method + " " + ci.path, Node: t.Node,
			Message: fmt.Sprintf("unexpected task status %q", raw.Status)}
	}
	return st, nil
}

// TaskLog implements Client.
func (a *Adapter) TaskLog(ctx context.Context, t TaskRef, start, limit int) ([]TaskLogLine, error) {
	ci, err := taskCall(t, "/log")
	if err != nil {
		return nil, err
	}
	p := map[string]any{}
	if start > 0 {
		p["start"] = start
	}
	if limit > 0 {
		p["limit"] = limit
	}
	var raw []struct {
		N flexNum `json:"n"`
		T string  `json:"t"`
	}
	if err := a.call(ctx, ci, p, &raw); err != nil {
		return nil, err
	}
	out := make([]TaskLogLine, 0, len(raw))
	for _, l := range raw {
		out = append(out, TaskLogLine{N: int(l.N), Text: l.T})
	}
	return out, nil
}

// ---- firewall -------------------------------------------------------------

type fwOptionsJSON struct {
	Enable      *flexBool `json:"enable"`
	DHCP        *flexBool `json:"dhcp"`
	IPFilter    *flexBool `json:"ipfilter"`
	MACFilter   *flexBool `json:"macfilter"`
	NDP         *flexBool `json:"ndp"`
	RAdv        *flexBool `json:"radv"`
	PolicyIn    string    `json:"policy_in"`
	PolicyOut   string    `json:"policy_out"`
	LogLevelIn  string    `json:"log_level_in"`
	LogLevelOut string    `json:"log_level_out"`
	Digest      string    `json:"digest"`
}

func fb(p *flexBool) *bool {
	if p == nil {
		return nil
	}
	b := bool(*p)
	return &b
}

// FirewallOptions implements Client (raw GET: go-proxmox's
// FirewallOptionGet always returns nil).
func (a *Adapter) FirewallOptions(ctx context.Context, vm VMRef) (FirewallOptions, error) {
	if err := checkVM("firewall options", vm); err != nil {
		return FirewallOptions{}, err
	}
	var raw fwOptionsJSON
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/firewall/options"), nil, &raw); err != nil {
		return FirewallOptions{}, err
	}
	return FirewallOptions{
		Enable: fb(raw.Enable), DHCP: fb(raw.DHCP), IPFilter: fb(raw.IPFilter), MACFilter: fb(raw.MACFilter),
		NDP: fb(raw.NDP), RAdv: fb(raw.RAdv), PolicyIn: raw.PolicyIn, PolicyOut: raw.PolicyOut,
		LogLevelIn: raw.LogLevelIn, LogLevelOut: raw.LogLevelOut, Digest: raw.Digest,
	}, nil
}

// SetFirewallOptions implements Client (raw PUT: go-proxmox cannot send 0).
func (a *Adapter) SetFirewallOptions(ctx context.Context, vm VMRef, o FirewallOptions) error {
	if err := checkVM("set firewall options", vm); err != nil {
		return err
	}
	p := map[string]any{}
	for k, v := range map[string]*bool{"enable": o.Enable, "dhcp": o.DHCP, "ipfilter": o.IPFilter,
		"macfilter": o.MACFilter, "ndp": o.NDP, "radv": o.RAdv} {
		if v != nil {
			p[k] = boolInt(*v)
		}
	}
	for k, v := range map[string]string{"policy_in": o.PolicyIn, "policy_out": o.PolicyOut,
		"log_level_in": o.LogLevelIn, "log_level_out": o.LogLevelOut, "digest": o.Digest} {
		if v != "" {
			p[k] = v
		}
	}
	if len(p) == 0 {
		return nil
	}
	return a.call(ctx, vmCall(http.MethodPut, vm, "/firewall/options"), p, nil)
}

// IPSets implements Client.
func (a *Adapter) IPSets(ctx context.Context, vm VMRef) ([]IPSet, error) {
	if err := checkVM("ipsets", vm); err != nil {
		return nil, err
	}
	var raw []struct {
		Name    string `json:"name"`
		Comment string `json:"comment"`
		Digest  string `json:"digest"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/firewall/ipset"), nil, &raw); err != nil {
		return nil, err
	}
	out := make([]IPSet, 0, len(raw))
	for _, s := range raw {
		out = append(out, IPSet(s))
	}
	return out, nil
}

// CreateIPSet implements Client.
func (a *Adapter) CreateIPSet(ctx context.Context, vm VMRef, name, comment string) error {
	if err := checkVM("create ipset", vm); err != nil {
		return err
	}
	p := map[string]any{"name": name}
	if comment != "" {
		p["comment"] = comment
	}
	return a.call(ctx, vmCall(http.MethodPost, vm, "/firewall/ipset"), p, nil)
}

// DeleteIPSet implements Client (raw DELETE: go-proxmox never sends force).
func (a *Adapter) DeleteIPSet(ctx context.Context, vm VMRef, name string, force bool) error {
	if err := checkVM("delete ipset", vm); err != nil {
		return err
	}
	var p map[string]any
	if force {
		p = map[string]any{"force": 1}
	}
	return a.call(ctx, vmCall(http.MethodDelete, vm, "/firewall/ipset/"+url.PathEscape(name)), p, nil)
}

// IPSetEntries implements Client.
func (a *Adapter) IPSetEntries(ctx context.Context, vm VMRef, name string) ([]IPSetEntry, error) {
	if err := checkVM("ipset entries", vm); err != nil {
		return nil, err
	}
	var raw []struct {
		CIDR    string   `json:"cidr"`
		Comment string   `json:"comment"`
		NoMatch flexBool `json:"nomatch"`
		Digest  string   `json:"digest"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/firewall/ipset/"+url.PathEscape(name)), nil, &raw); err != nil {
		return nil, err
	}
	out := make([]IPSetEntry, 0, len(raw))
	for _, e := range raw {
		out = append(out, IPSetEntry{CIDR: e.CIDR, Comment: e.Comment, NoMatch: bool(e.NoMatch), Digest: e.Digest})
	}
	return out, nil
}

// AddIPSetEntry implements Client.
func (a *Adapter) AddIPSetEntry(ctx context.Context, vm VMRef, name string, e IPSetEntry) error {
	if err := checkVM("add ipset entry", vm); err != nil {
		return err
	}
	p := map[string]any{"cidr": e.CIDR}
	if e.Comment != "" {
		p["comment"] = e.Comment
	}
	if e.NoMatch {
		p["nomatch"] = 1
	}
	return a.call(ctx, vmCall(http.MethodPost, vm, "/firewall/ipset/"+url.PathEscape(name)), p, nil)
}

// RemoveIPSetEntry implements Client. The CIDR's '/' is sent as %2F, as
// PVE's web UI does (encodeURIComponent).
func (a *Adapter) RemoveIPSetEntry(ctx context.Context, vm VMRef, name, cidr string) error {
	if err := checkVM("remove ipset entry", vm); err != nil {
		return err
	}
	return a.call(ctx, vmCall(http.MethodDelete, vm, "/firewall/ipset/"+url.PathEscape(name)+"/"+url.PathEscape(cidr)), nil, nil)
}

// ---- backups, storage content, restore ------------------------------------

// Backup implements Client.
func (a *Adapter) Backup(ctx context.Context, req BackupRequest) (TaskRef, error) {
	if err := checkVM("backup", req.VM); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{"vmid": strconv.Itoa(req.VM.VMID)}
	for k, v := range map[string]string{"storage": req.Storage, "mode": req.Mode, "compress": req.Compress,
		"notes-template": req.NotesTemplate} {
		if v != "" {
			p[k] = v
		}
	}
	if req.Protected {
		p["protected"] = 1
	}
	if req.Remove != nil {
		p["remove"] = boolInt(*req.Remove)
	}
	ci := callInfo{method: http.MethodPost, path: "/nodes/" + url.PathEscape(req.VM.Node) + "/vzdump", node: req.VM.Node, vmid: req.VM.VMID}
	return a.task(ctx, ci, p)
}

func storagePath(node, storage string) string {
	return "/nodes/" + url.PathEscape(node) + "/storage/" + url.PathEscape(storage) + "/content"
}

// StorageContent implements Client.
func (a *Adapter) StorageContent(ctx context.Context, node, storage string, f ContentFilter) ([]Volume, error) {
	if node == "" || storage == "" {
		return nil, errorf(ClassInvalid, "storage content", "node and storage are required")
	}
	p := map[string]any{}
	if f.Content != "" {
		p["content"] = f.Content
	}
	if f.VMID != 0 {
		p["vmid"] = f.VMID
	}
	var raw []struct {
		VolID     string   `json:"volid"`
		Content   string   `json:"content"`
		Format    string   `json:"format"`
		Subtype   string   `json:"subtype"`
		VMID      flexNum  `json:"vmid"`
		Size      flexNum  `json:"size"`
		Used      flexNum  `json:"used"`
		CTime     flexNum  `json:"ctime"`
		Notes     string   `json:"notes"`
		Protected flexBool `json:"protected"`
	}
	ci := callInfo{method: http.MethodGet, path: storagePath(node, storage), node: node, vmid: f.VMID}
	if err := a.call(ctx, ci, p, &raw); err != nil {
		return nil, err
	}
	out := make([]Volume, 0, len(raw))
	for _, v := range raw {
		out = append(out, Volume{VolID: v.VolID, Content: v.Content, Format: v.Format, Subtype: v.Subtype,
			VMID: int(v.VMID), Size: int64(v.Size), Used: int64(v.Used), CTime: unixTime(v.CTime),
			Notes: v.Notes, Protected: bool(v.Protected)})
	}
	return out, nil
}

// DeleteVolume implements Client. The volume id goes into the path with its
// '/' kept (PVE's route takes the rest of the path as the volume).
func (a *Adapter) DeleteVolume(ctx context.Context, node, storage, volid string) (TaskRef, error) {
	if node == "" || storage == "" || volid == "" {
		return TaskRef{}, errorf(ClassInvalid, "delete volume", "node, storage and volume are required")
	}
	segs := strings.Split(volid, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	ci := callInfo{method: http.MethodDelete, path: storagePath(node, storage) + "/" + strings.Join(segs, "/"), node: node}
	return a.task(ctx, ci, nil)
}

// Restore implements Client.
func (a *Adapter) Restore(ctx context.Context, req RestoreRequest) (TaskRef, error) {
	if err := checkVM("restore", req.VM); err != nil {
		return TaskRef{}, err
	}
	if req.Archive == "" {
		return TaskRef{}, errorf(ClassInvalid, "restore", "archive is required")
	}
	p := map[string]any{"vmid": req.VM.VMID, "archive": req.Archive}
	if req.Storage != "" {
		p["storage"] = req.Storage
	}
	if req.Pool != "" {
		p["pool"] = req.Pool
	}
	if req.Force {
		p["force"] = 1
	}
	if req.Unique {
		p["unique"] = 1
	}
	ci := callInfo{method: http.MethodPost, path: "/nodes/" + url.PathEscape(req.VM.Node) + "/qemu", node: req.VM.Node, vmid: req.VM.VMID}
	return a.task(ctx, ci, p)
}

// ---- snapshots and RRD ----------------------------------------------------

// Snapshots implements Client.
func (a *Adapter) Snapshots(ctx context.Context, vm VMRef) ([]Snapshot, error) {
	if err := checkVM("snapshots", vm); err != nil {
		return nil, err
	}
	var raw []struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Parent      string   `json:"parent"`
		SnapTime    flexNum  `json:"snaptime"`
		VMState     flexBool `json:"vmstate"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/snapshot"), nil, &raw); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(raw))
	for _, s := range raw {
		if s.Name == "current" { // PVE's "You are here!" pseudo entry; a real snapshot cannot use the name
			continue
		}
		out = append(out, Snapshot{Name: s.Name, Description: s.Description, Parent: s.Parent,
			SnapTime: unixTime(s.SnapTime), VMState: bool(s.VMState)})
	}
	return out, nil
}

// CreateSnapshot implements Client.
func (a *Adapter) CreateSnapshot(ctx context.Context, vm VMRef, req SnapshotRequest) (TaskRef, error) {
	if err := checkVM("create snapshot", vm); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{"snapname": req.Name}
	if req.Description != "" {
		p["description"] = req.Description
	}
	if req.VMState {
		p["vmstate"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/snapshot"), p)
}

// DeleteSnapshot implements Client.
func (a *Adapter) DeleteSnapshot(ctx context.Context, vm VMRef, name string, force bool) (TaskRef, error) {
	if err := checkVM("delete snapshot", vm); err != nil {
		return TaskRef{}, err
	}
	var p map[string]any
	if force {
		p = map[string]any{"force": 1}
	}
	return a.task(ctx, vmCall(http.MethodDelete, vm, "/snapshot/"+url.PathEscape(name)), p)
}

// RRDData implements Client.
func (a *Adapter) RRDData(ctx context.Context, vm VMRef, tf Timeframe, cf ConsolidationFunction) ([]RRDPoint, error) {
	if err := checkVM("rrddata", vm); err != nil {
		return nil, err
	}
	if tf == "" {
		tf = TimeframeHour
	}
	p := map[string]any{"timeframe": string(tf)}
	if cf != "" {
		p["cf"] = string(cf)
	}
	var raw []struct {
		Time      flexNum `json:"time"`
		CPU       flexNum `json:"cpu"`
		MaxCPU    flexNum `json:"maxcpu"`
		Mem       flexNum `json:"mem"`
		MaxMem    flexNum `json:"maxmem"`
		Disk      flexNum `json:"disk"`
		MaxDisk   flexNum `json:"maxdisk"`
		NetIn     flexNum `json:"netin"`
		NetOut    flexNum `json:"netout"`
		DiskRead  flexNum `json:"diskread"`
		DiskWrite flexNum `json:"diskwrite"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/rrddata"), p, &raw); err != nil {
		return nil, err
	}
	out := make([]RRDPoint, 0, len(raw))
	for _, r := range raw {
		out = append(out, RRDPoint{Time: unixTime(r.Time), CPU: float64(r.CPU), MaxCPU: float64(r.MaxCPU),
			Mem: float64(r.Mem), MaxMem: float64(r.MaxMem), Disk: float64(r.Disk), MaxDisk: float64(r.MaxDisk),
			NetIn: float64(r.NetIn), NetOut: float64(r.NetOut), DiskRead: float64(r.DiskRead), DiskWrite: float64(r.DiskWrite)})
	}
	return out, nil
}
