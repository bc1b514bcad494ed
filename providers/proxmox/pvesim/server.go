package pvesim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one recorded API request.
type Request struct {
	Time     time.Time         `json:"time"`
	Method   string            `json:"method"`
	Path     string            `json:"path"`     // below /api2/json
	Endpoint string            `json:"endpoint"` // "METHOD /schema/path", "" if unknown
	Params   map[string]string `json:"params"`
	TokenID  string            `json:"tokenid,omitempty"`
	Status   int               `json:"status"`
	Message  string            `json:"message,omitempty"`
	// Rejected: schema validation failed (400 Parameter verification failed.)
	Rejected bool              `json:"rejected,omitempty"`
	Errors   map[string]string `json:"errors,omitempty"`
}

// Requests returns every recorded API request.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Rejected returns the requests rejected by schema validation.
func (s *Sim) Rejected() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Rejected {
			out = append(out, r)
		}
	}
	return out
}

// RequireNoRejections fails the test if any request failed schema validation.
func (s *Sim) RequireNoRejections(t testing.TB) {
	t.Helper()
	for _, r := range s.Rejected() {
		t.Errorf("pvesim: %s %s rejected by PVE schema validation: %v (params %v)", r.Method, r.Path, r.Errors, r.Params)
	}
}

type apiError struct {
	code   int
	msg    string
	errors map[string]string
	// schema: the request itself is invalid (the schema's own checks, or
	// its cross-parameter "requires"), not the state it met: recorded as a
	// rejection.
	schema bool
}

func serverErr(msg string) *apiError { return &apiError{code: 500, msg: msg} }

func paramErr(field, msg string) *apiError {
	return &apiError{code: 400, msg: "Parameter verification failed.", errors: map[string]string{field: msg}}
}

// requiresErr is the 400 of a parameter the schema says needs another
// (JSONSchema "requires"), which PVE checks with the rest of the schema.
func requiresErr(field, msg string) *apiError {
	e := paramErr(field, "missing property - "+msg)
	e.schema = true
	return e
}

// withTotal is a response with a top-level "total" next to "data".
type withTotal struct {
	data  any
	total int
}

type call struct {
	s       *Sim
	ep      string
	method  string
	path    string
	vars    map[string]string
	params  map[string]any
	user    string // user@realm!token
	grants  []Grant
	limited bool
	// validationErr is set when schema validation rejected the call.
	validationErr *apiError
}

func (c *call) str(k string) string {
	if v, ok := c.vars[k]; ok {
		return v
	}
	s, _ := scalar(c.params[k])
	return s
}

func (c *call) has(k string) bool { _, ok := c.params[k]; return ok }

func (c *call) int(k string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(c.str(k), "+"))
	return n
}

func (c *call) bool(k string) bool { return c.str(k) == "1" }

type handlerFunc func(c *call) (any, *apiError)

type route struct {
	ep      string
	method  string
	segs    []string
	handler handlerFunc
	perm    func(c *call) (string, string) // ACL path and privilege, "" = none
	authz   func(c *call) *apiError        // checks done inside the handler code
}

func (s *Sim) routes() []route {
	var out []route
	for _, ep := range Endpoints() {
		method, path, _ := strings.Cut(ep, " ")
		h, ok := handlers[ep]
		if !ok {
			continue
		}
		out = append(out, route{ep: ep, method: method, segs: strings.Split(strings.TrimPrefix(path, "/"), "/"), handler: h.fn, perm: h.perm, authz: h.authz})
	}
	return out
}

// match finds the route of a request; rest-of-path variables ({volume},
// {cidr}) may contain "/".
func matchRoute(routes []route, method string, segs []string) (*route, map[string]string) {
	for i := range routes {
		r := &routes[i]
		if r.method != method {
			continue
		}
		vars := map[string]string{}
		ok := true
		for j, pat := range r.segs {
			if j >= len(segs) {
				ok = false
				break
			}
			if strings.HasPrefix(pat, "{") {
				name := strings.Trim(pat, "{}")
				if (name == "volume" || name == "cidr") && j == len(r.segs)-1 {
					vars[name] = strings.Join(segs[j:], "/")
					segs = segs[:j+1]
					break
				}
				if segs[j] == "" {
					ok = false
					break
				}
				vars[name] = segs[j]
			} else if pat != segs[j] {
				ok = false
				break
			}
		}
		if ok && len(segs) == len(r.segs) {
			return r, vars
		}
	}
	return nil, nil
}

func (s *Sim) errorBody(e *apiError) []byte {
	m := map[string]any{"data": nil}
	if e.errors != nil {
		m["errors"] = e.errors
	}
	if !s.legacyBody() {
		m["message"] = e.msg + "\n"
	}
	b, _ := json.Marshal(m)
	return b
}

func (s *Sim) legacyBody() bool {
	if s.cluster.LegacyErrorBody {
		return true
	}
	v := s.cluster.Version
	return strings.HasPrefix(v, "6.") || strings.HasPrefix(v, "7.") || v == "8.0" || strings.HasPrefix(v, "8.0.") || strings.HasPrefix(v, "8.1") || strings.HasPrefix(v, "8.2")
}

// writeRaw writes a response whose reason phrase is msg, as PVE does
// (Go's ResponseWriter cannot set a reason phrase, so hijack the connection).
// leavingWriter ends a request's in-flight count (leave) before anything
// of its answer reaches the client.
type leavingWriter struct {
	http.ResponseWriter
	leave func()
}

func (l *leavingWriter) WriteHeader(code int) {
	l.leave()
	l.ResponseWriter.WriteHeader(code)
}

func (l *leavingWriter) Write(b []byte) (int, error) {
	l.leave()
	return l.ResponseWriter.Write(b)
}

func (l *leavingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := l.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	l.leave()
	return hj.Hijack()
}

func writeRaw(w http.ResponseWriter, r *http.Request, code int, msg string, body []byte) {
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	hj, ok := w.(http.Hijacker)
	if !ok || r.ProtoMajor != 1 {
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(code)
		_, _ = w.Write(body)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		w.WriteHeader(code)
		_, _ = w.Write(body)
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %03d %s\r\nCache-Control: max-age=0\r\nConnection: close\r\nPragma: no-cache\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: %d\r\nDate: %s\r\nExpires: %s\r\n\r\n",
		code, msg, len(body), time.Now().UTC().Format(http.TimeFormat), time.Now().UTC().Format(http.TimeFormat))
	_, _ = buf.Write(body)
	_ = buf.Flush()
}

// parseParams reads query and body parameters the way pve-http-server does.
func parseParams(r *http.Request) (map[string]any, *apiError) {
	params := map[string]any{}
	for k, v := range r.URL.Query() {
		params[k] = v[len(v)-1]
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return nil, &apiError{code: 400, msg: "unable to read request body"}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return params, nil
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return nil, &apiError{code: 501, msg: fmt.Sprintf("Unexpected content for method '%s'", r.Method)}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return nil, &apiError{code: 400, msg: "malformed JSON string"}
		}
		for k, v := range m {
			if v == nil {
				continue
			}
			params[k] = v
		}
		return params, nil
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, &apiError{code: 400, msg: "unable to parse request body"}
	}
	for k, v := range vals {
		params[k] = v[len(v)-1]
	}
	return params, nil
}

func (s *Sim) record(req Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
}

func (s *Sim) authenticate(r *http.Request) (TokenSpec, string, bool) {
	h := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(h, "PVEAPIToken=")
	if !ok {
		rest, ok = strings.CutPrefix(h, "PVEAPIToken ")
	}
	if !ok {
		return TokenSpec{}, "No ticket", false
	}
	if i := strings.IndexByte(rest, ';'); i >= 0 {
		rest = rest[:i]
	}
	i := strings.LastIndexByte(rest, '=')
	if i < 0 {
		return TokenSpec{}, "Authentication failed!", false
	}
	id, secret := strings.TrimSpace(rest[:i]), strings.TrimSpace(rest[i+1:])
	s.mu.Lock() // SetTokenGrants changes a token's grants
	defer s.mu.Unlock()
	for _, t := range s.cluster.Tokens {
		if t.ID == id && t.Secret == secret {
			return t, "", true
		}
	}
	return TokenSpec{}, "Authentication failed!", false
}

// can says whether the caller holds priv on path.
func (c *call) can(path, priv string) bool { return !c.limited || allowed(c.grants, path, priv) }

// permErr is PVE's raise_perm_exc: 403 "Permission check failed (<what>)",
// or without the parenthesis when what is "".
func permErr(what string) *apiError {
	msg := "Permission check failed"
	if what != "" {
		msg += " (" + what + ")"
	}
	return &apiError{code: 403, msg: msg}
}

// check is $rpcenv->check($user, $path, [$priv]).
func (c *call) check(path, priv string) *apiError {
	if c.can(path, priv) {
		return nil
	}
	return permErr(path + ", " + priv)
}

func allowed(grants []Grant, path, priv string) bool {
	for _, g := range grants {
		gp := strings.TrimSuffix(g.Path, "/")
		if gp != "" && path != gp && !strings.HasPrefix(path, gp+"/") {
			continue
		}
		for _, p := range g.Privs {
			if p == "*" || p == priv {
				return true
			}
		}
	}
	return false
}

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request) {
	rel, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api2/json")
	if !ok {
		writeRaw(w, r, 501, "Not Implemented", []byte(`{"data":null}`))
		return
	}
	leaveNow, ok := s.flight.enter(r.Context(), requestNode(rel))
	if !ok {
		return // the client gave up while the node's workers were busy
	}
	// The request stops counting as in flight before the first byte of its
	// answer is written: a client that got the answer may send its next
	// request at once, and that one must not overlap this one's count.
	leave := sync.OnceFunc(leaveNow)
	defer leave()
	w = &leavingWriter{ResponseWriter: w, leave: leave}
	req := Request{Method: r.Method, Path: rel, Params: map[string]string{}}
	// latency
	s.mu.Lock()
	lat := s.faults.latency
	if s.faults.jitter > 0 {
		lat += time.Duration(s.rng.Int64N(int64(s.faults.jitter)))
	}
	authDelay := time.Duration(s.cluster.Durations.AuthFailure)
	s.mu.Unlock()
	if lat > 0 {
		time.Sleep(lat)
	}
	respondErr := func(e *apiError) {
		req.Status, req.Message = e.code, e.msg
		if e.errors != nil && req.Errors == nil {
			req.Errors = e.errors
		}
		req.Time = s.now()
		s.record(req)
		body := s.errorBody(e)
		if e.code == 401 {
			body = nil
		}
		writeRaw(w, r, e.code, e.msg, body)
	}
	tok, authMsg, ok := s.authenticate(r)
	if !ok {
		if authDelay > 0 {
			time.Sleep(authDelay)
		}
		respondErr(&apiError{code: 401, msg: authMsg})
		return
	}
	req.TokenID = tok.ID
	var segs []string
	for _, seg := range strings.Split(strings.Trim(rel, "/"), "/") {
		u, err := url.PathUnescape(seg)
		if err != nil {
			u = seg
		}
		segs = append(segs, u)
	}
	params, perr := parseParams(r)
	for k, v := range params {
		sv, kind := scalar(v)
		if kind == "ARRAY" || kind == "HASH" {
			b, _ := json.Marshal(v)
			sv = string(b)
		}
		if k == "cipassword" {
			sv = "<hidden>" // as in PVE's task log and syslog
		}
		req.Params[k] = sv
	}
	rt, vars := matchRoute(s.routes(), r.Method, segs)
	if rt == nil {
		respondErr(&apiError{code: 501, msg: fmt.Sprintf("Method '%s %s' not implemented", r.Method, rel)})
		return
	}
	req.Endpoint = rt.ep
	if perr != nil {
		respondErr(perr)
		return
	}
	for k, v := range vars {
		params[k] = v
		req.Params[k] = v
	}
	c := &call{s: s, ep: rt.ep, method: r.Method, path: rel, vars: vars, params: params, user: tok.ID, grants: tok.Grants, limited: len(tok.Grants) > 0}

	s.mu.Lock()
	s.runTasks()
	data, apiErr, after := s.dispatch(c, rt)
	var afterErr *apiError
	if after != nil {
		afterErr = c.faultErr(after)
	}
	s.mu.Unlock()
	if apiErr != nil {
		if apiErr == c.validationErr || apiErr.schema {
			req.Rejected = true
		}
		respondErr(apiErr)
		return
	}
	if afterErr != nil {
		respondErr(afterErr)
		return
	}
	req.Status = 200
	req.Time = s.now()
	s.record(req)
	out := map[string]any{"data": data}
	if wt, ok := data.(withTotal); ok {
		out = map[string]any{"data": wt.data, "total": wt.total}
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "max-age=0")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(200)
	_, _ = w.Write(b)
}

// dispatch runs node checks, faults, permissions, validation and the
// handler, under s.mu.
func (s *Sim) dispatch(c *call, rt *route) (any, *apiError, *FailNext) {
	nodeName := c.vars["node"]
	if nodeName != "" {
		n := s.nodes[nodeName]
		if n == nil {
			return nil, serverErr(fmt.Sprintf("hostname lookup '%s' failed - failed to get address info for: %s: Name or service not known", nodeName, nodeName)), nil
		}
		if n.offline {
			return nil, &apiError{code: 595, msg: DefaultFaultMessage(595)}, nil
		}
	}
	vmid, _ := strconv.Atoi(c.vars["vmid"])
	var after *FailNext
	if f := s.matchCallFault(c.ep, nodeName, vmid); f != nil {
		if !f.AfterApply {
			return nil, c.faultErr(f), nil
		}
		after = f
	}
	if c.limited && rt.perm != nil {
		if path, priv := rt.perm(c); priv != "" && !allowed(c.grants, path, priv) {
			return nil, &apiError{code: 403, msg: fmt.Sprintf("Permission check failed (%s, %s)", path, priv)}, nil
		}
	}
	if errs := s.schema.validate(c.ep, c.params); len(errs) > 0 {
		c.validationErr = &apiError{code: 400, msg: "Parameter verification failed.", errors: errs}
		return nil, c.validationErr, nil
	}
	if c.method != http.MethodGet && !s.quorate {
		return nil, serverErr("cluster not ready - no quorum?"), nil
	}
	if c.limited && rt.authz != nil {
		// permissions => { user => 'all' }: the handler checks (after
		// parameter verification)
		if e := rt.authz(c); e != nil {
			return nil, e, nil
		}
	}
	data, err := rt.handler(c)
	if err != nil {
		return nil, err, nil
	}
	return data, nil, after
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
