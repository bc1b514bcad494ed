package pvesim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Access control: the part of PVE's user.cfg that GET/PUT /access/acl and
// the pool endpoints read and change (users, groups, tokens, roles, pools
// and ACL entries), as pve-access-control (PVE::API2::ACL) and pve-manager
// (PVE::API2::Pool) do it. The ACL is data only: it does not feed the
// permission checks of the simulated tokens (TokenSpec.Grants does).

// AccessSpec seeds the access configuration (cluster.yaml `access`).
type AccessSpec struct {
	// Users that exist besides root@pam and the users of Tokens
	// ("customer@pve").
	Users []string `yaml:"users" json:"users"`
	// Groups that exist ("customers", written without '@').
	Groups []string `yaml:"groups" json:"groups"`
	// Tokens that exist besides Cluster.Tokens ("customer@pve!cli"); their
	// users exist too. They cannot authenticate (no secret).
	Tokens []string `yaml:"tokens" json:"tokens"`
	// Roles are custom roles besides PVE's built-in ones (BuiltinRoles).
	Roles []string `yaml:"roles" json:"roles"`
	// Pools and their VM members.
	Pools []PoolSpec `yaml:"pools" json:"pools"`
	// ACL entries.
	ACL []ACLEntry `yaml:"acl" json:"acl"`
}

// PoolSpec is a resource pool.
type PoolSpec struct {
	ID      string `yaml:"id" json:"poolid"`
	Comment string `yaml:"comment" json:"comment,omitempty"`
	VMs     []int  `yaml:"vms" json:"vms"`
}

// ACLEntry is one ACL entry as GET /access/acl shows it: a role for a user
// (ugid user@realm), a group (ugid without '@') or a token (ugid
// user@realm!name) on a path. Propagate nil means PVE's default (1).
type ACLEntry struct {
	Path      string `yaml:"path" json:"path"`
	RoleID    string `yaml:"roleid" json:"roleid"`
	Type      string `yaml:"type" json:"type"` // user | group | token
	UGID      string `yaml:"ugid" json:"ugid"`
	Propagate *bool  `yaml:"propagate" json:"propagate,omitempty"`
}

func (e ACLEntry) propagate() bool { return e.Propagate == nil || *e.Propagate }

// AccessState is the access configuration now (Sim.Access, GET /_sim/access).
type AccessState struct {
	Users  []string   `json:"users"`
	Groups []string   `json:"groups"`
	Tokens []string   `json:"tokens"`
	Pools  []PoolSpec `json:"pools"`
	ACL    []ACLEntry `json:"acl"`
	Roles  []string   `json:"roles"` // custom roles only
}

// BuiltinRoles are PVE's built-in roles (pve-access-control 8.4/9.x).
var BuiltinRoles = []string{"Administrator", "NoAccess", "PVEAdmin", "PVEAuditor", "PVEDatastoreAdmin",
	"PVEDatastoreUser", "PVEMappingAdmin", "PVEMappingUser", "PVEPoolAdmin", "PVEPoolUser", "PVESDNAdmin",
	"PVESDNUser", "PVESysAdmin", "PVETemplateUser", "PVEUserAdmin", "PVEVMAdmin", "PVEVMUser"}

type aclKey struct{ path, typ, ugid, role string }

type access struct {
	users, groups, tokens, roles map[string]bool
	pools                        map[string]*pool
	acl                          map[aclKey]bool // → propagate
}

type pool struct {
	comment string
	vms     map[int]bool
}

func newAccess() *access {
	a := &access{users: map[string]bool{"root@pam": true}, groups: map[string]bool{}, tokens: map[string]bool{},
		roles: map[string]bool{}, pools: map[string]*pool{}, acl: map[aclKey]bool{}}
	for _, r := range BuiltinRoles {
		a.roles[r] = true
	}
	return a
}

func (s *Sim) initAccess(spec AccessSpec) error {
	a := newAccess()
	s.access = a
	for _, t := range s.cluster.Tokens {
		a.addToken(t.ID)
	}
	for _, u := range spec.Users {
		if msg := checkNamedFormat("pve-userid", u); msg != "" {
			return fmt.Errorf("pvesim: access: %s", strings.TrimSpace(msg))
		}
		a.users[u] = true
	}
	for _, g := range spec.Groups {
		a.groups[g] = true
	}
	for _, t := range spec.Tokens {
		if !tokenIDRe.MatchString(t) {
			return fmt.Errorf("pvesim: access: token id %q is not user@realm!name", t)
		}
		a.addToken(t)
	}
	for _, r := range spec.Roles {
		a.roles[r] = true
	}
	for _, p := range spec.Pools {
		if err := s.addPool(p); err != nil {
			return err
		}
	}
	for _, e := range spec.ACL {
		if err := s.setACL(e); err != nil {
			return err
		}
	}
	return nil
}

func (a *access) addToken(id string) {
	a.tokens[id] = true
	user, _, _ := strings.Cut(id, "!")
	a.users[user] = true
}

func (s *Sim) addPool(p PoolSpec) error {
	if !poolIDRe.MatchString(p.ID) {
		return fmt.Errorf("pvesim: invalid pool ID %q", p.ID)
	}
	if s.access.pools[p.ID] != nil {
		return fmt.Errorf("pvesim: pool '%s' already exists", p.ID)
	}
	s.access.pools[p.ID] = &pool{comment: p.Comment, vms: map[int]bool{}}
	for _, id := range p.VMs {
		if cur := s.poolOf(id); cur != "" {
			return fmt.Errorf("pvesim: VM %d belongs already to pool '%s'", id, cur)
		}
		s.access.pools[p.ID].vms[id] = true
	}
	return nil
}

// setACL adds an entry as PUT /access/acl would, for seeding: the
// principal and role must exist.
func (s *Sim) setACL(e ACLEntry) error {
	if e.Path == "" || e.RoleID == "" || e.UGID == "" {
		return fmt.Errorf("pvesim: ACL entry needs path, roleid, type and ugid: %+v", e)
	}
	if msg := s.access.principalErr(e.Type, e.UGID); msg != "" {
		return fmt.Errorf("pvesim: %s", msg)
	}
	if !s.access.roles[e.RoleID] {
		return fmt.Errorf("pvesim: role '%s' does not exist", e.RoleID)
	}
	s.access.acl[aclKey{normalizeACLPath(e.Path), e.Type, e.UGID, e.RoleID}] = e.propagate()
	return nil
}

// principalErr is the message PVE dies with when the principal does not
// exist ("" = it does).
func (a *access) principalErr(typ, ugid string) string {
	switch typ {
	case "user":
		if !a.users[ugid] {
			return fmt.Sprintf("user '%s' does not exist", ugid)
		}
	case "group":
		if !a.groups[ugid] {
			return fmt.Sprintf("group '%s' does not exist", ugid)
		}
	case "token":
		user, name, _ := strings.Cut(ugid, "!")
		if !a.users[user] {
			return fmt.Sprintf("no such user ('%s')", user)
		}
		if !a.tokens[ugid] {
			return fmt.Sprintf("no such token '%s' for user '%s'", name, user)
		}
	default:
		return fmt.Sprintf("unknown ACL type '%s'", typ)
	}
	return ""
}

func (s *Sim) poolOf(vmid int) string {
	for _, id := range sortedKeys(s.access.pools) {
		if s.access.pools[id].vms[vmid] {
			return id
		}
	}
	return ""
}

// removeVMAccess is PVE::AccessControl::remove_vm_access, which the
// qmdestroy worker runs (with or without purge): the ACL entries on
// /vms/VMID and the VM's pool membership go.
func (s *Sim) removeVMAccess(vmid int) {
	path := "/vms/" + strconv.Itoa(vmid)
	for k := range s.access.acl {
		if k.path == path {
			delete(s.access.acl, k)
		}
	}
	for _, p := range s.access.pools {
		delete(p.vms, vmid)
	}
}

// normalizeACLPath is PVE::AccessControl::normalize_path ("" = invalid).
func normalizeACLPath(p string) string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			parts = append(parts, s)
		}
	}
	out := "/" + strings.Join(parts, "/")
	if !aclPathCharsRe.MatchString(out) {
		return ""
	}
	return out
}

var (
	aclPathCharsRe = regexp.MustCompile(`^[[:alnum:]\.\-\_\/:]+$`)
	// aclPathRe is the subset of PVE::AccessControl::check_path's paths
	// that an ACL entry may be added on.
	aclPathRe = regexp.MustCompile(`^/(?:access(?:/groups(?:/[[:alnum:]\.\-\_]+)?|/realm(?:/[[:alnum:]\.\-\_]+)?)?|` +
		`nodes(?:/[[:alnum:]\.\-\_]+)?|pool(?:/[A-Za-z0-9\.\-_]+){0,3}|sdn(?:/.+)?|storage(?:/[[:alnum:]\.\-\_]+)?|` +
		`vms(?:/\d+)?|mapping(?:/.+)?)?$`)
	userIDRe  = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9\.\-_]+$`)
	groupIDRe = regexp.MustCompile(`^[-_.A-Za-z0-9]+$`)
	tokenIDRe = regexp.MustCompile(`^[^\s:/]+@[A-Za-z][A-Za-z0-9\.\-_]+![A-Za-z][A-Za-z0-9\.\-_]+$`)
)

// checkAccessFormat verifies the pve-access-control formats
// (pve-userid, pve-groupid, pve-roleid, pve-tokenid and their -list forms,
// split as PVE::Tools::split_list does).
func checkAccessFormat(format, s string) (string, bool) {
	base, list := strings.CutSuffix(format, "-list")
	var one func(string) string
	switch base {
	case "pve-userid":
		one = func(v string) string {
			switch {
			case len(v) < 3:
				return "user name '" + v + "' is too short\n"
			case len(v) > 64:
				return fmt.Sprintf("user name '%s' is too long (%d > 64)\n", v, len(v))
			case !userIDRe.MatchString(v):
				return "value '" + v + "' does not look like a valid user name\n"
			}
			return ""
		}
	case "pve-groupid":
		one = func(v string) string {
			if !groupIDRe.MatchString(v) {
				return "group name '" + v + "' contains invalid characters\n"
			}
			return ""
		}
	case "pve-roleid":
		one = func(v string) string {
			if !groupIDRe.MatchString(v) {
				return "role name '" + v + "' contains invalid characters\n"
			}
			return ""
		}
	case "pve-tokenid":
		one = func(v string) string {
			if !tokenIDRe.MatchString(v) {
				return "invalid token ID '" + v + "'\n"
			}
			return ""
		}
	default:
		return "", false
	}
	if !list {
		return one(s), true
	}
	for _, v := range splitList(s) {
		if msg := one(v); msg != "" {
			return msg, true
		}
	}
	return "", true
}

// splitList is PVE::Tools::split_list.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\x00' })
}

// ---- permissions -------------------------------------------------------------

// canModify is $rpcenv->check_perm_modify($user, $path, 1).
func (c *call) canModify(path string) bool {
	privs := []string{"Permissions.Modify"}
	switch {
	case strings.HasPrefix(path, "/storage/"):
		privs = append(privs, "Datastore.Allocate")
	case strings.HasPrefix(path, "/vms/"):
		privs = append(privs, "VM.Allocate")
	case strings.HasPrefix(path, "/pool/"):
		privs = append(privs, "Pool.Allocate")
	}
	for _, p := range privs {
		if c.can(path, p) {
			return true
		}
	}
	return false
}

func (c *call) checkModify(path string) *apiError {
	if c.canModify(path) {
		return nil
	}
	privs := "Permissions.Modify"
	switch {
	case strings.HasPrefix(path, "/storage/"):
		privs += "|Datastore.Allocate"
	case strings.HasPrefix(path, "/vms/"):
		privs += "|VM.Allocate"
	case strings.HasPrefix(path, "/pool/"):
		privs += "|Pool.Allocate"
	}
	return permErr(path + ", " + privs)
}

func aclAuthz(c *call) *apiError {
	if p := normalizeACLPath(c.str("path")); p != "" {
		return c.checkModify(p)
	}
	return nil // the handler reports the invalid path
}

func poolPerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/pool/" + c.str("poolid"), priv }
}

// ---- handlers ----------------------------------------------------------------

// hACLGet is GET /access/acl: the entries on paths where the caller may
// modify permissions (or holds Sys.Audit on /access).
func hACLGet(c *call) (any, *apiError) {
	a := c.s.access
	keys := make([]aclKey, 0, len(a.acl))
	for k := range a.acl {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := keys[i], keys[j]
		if x.path != y.path {
			return x.path < y.path
		}
		if x.typ != y.typ {
			return x.typ < y.typ
		}
		if x.ugid != y.ugid {
			return x.ugid < y.ugid
		}
		return x.role < y.role
	})
	audit := c.can("/access", "Sys.Audit")
	out := []any{}
	for _, k := range keys {
		if !audit && !c.canModify(k.path) {
			continue
		}
		out = append(out, map[string]any{"path": k.path, "type": k.typ, "ugid": k.ugid, "roleid": k.role, "propagate": b01(a.acl[k])})
	}
	return out, nil
}

// hACLPut is PUT /access/acl (PVE::API2::ACL::update_acl).
func hACLPut(c *call) (any, *apiError) {
	users, groups, tokens := splitList(c.str("users")), splitList(c.str("groups")), splitList(c.str("tokens"))
	if len(users) == 0 && len(groups) == 0 && len(tokens) == 0 {
		msg := "either 'users', 'groups' or 'tokens' is required."
		e := &apiError{code: 400, msg: "Parameter verification failed.", errors: map[string]string{"users": msg, "groups": msg, "tokens": msg}}
		e.schema = true
		return nil, e
	}
	path := normalizeACLPath(c.str("path"))
	if path == "" || (!c.bool("delete") && !aclPathRe.MatchString(path)) {
		e := paramErr("path", "invalid ACL path '"+c.str("path")+"'")
		e.schema = true
		return nil, e
	}
	propagate := !c.has("propagate") || c.bool("propagate")
	a := c.s.access
	// PVE applies the entries one by one and writes user.cfg only when all
	// went through (cfs_write_file after the loop): collect, then apply.
	type change struct {
		k   aclKey
		del bool
	}
	var changes []change
	fail := func(msg string) (any, *apiError) { return nil, serverErr("ACL update failed: " + msg) }
	for _, role := range splitList(c.str("roles")) {
		if !a.roles[role] {
			return fail(fmt.Sprintf("role '%s' does not exist", role))
		}
		for _, g := range groups {
			if msg := a.principalErr("group", g); msg != "" {
				return fail(msg)
			}
			changes = append(changes, change{aclKey{path, "group", g, role}, c.bool("delete")})
		}
		for _, u := range users {
			if msg := a.principalErr("user", u); msg != "" {
				return fail(msg)
			}
			changes = append(changes, change{aclKey{path, "user", u, role}, c.bool("delete")})
		}
		for _, t := range tokens {
			if msg := a.principalErr("token", t); msg != "" {
				return fail(msg)
			}
			changes = append(changes, change{aclKey{path, "token", t, role}, c.bool("delete")})
		}
	}
	for _, ch := range changes {
		if ch.del {
			delete(a.acl, ch.k)
		} else {
			a.acl[ch.k] = propagate
		}
	}
	return nil, nil
}

// newPoolAPI: PUT /pools and GET /pools?poolid= came with nested pools in
// PVE 8.1; before, PUT /pools did not exist (501) and GET /pools took no
// poolid.
func (s *Sim) newPoolAPI() bool {
	v := s.cluster.Version
	return !(strings.HasPrefix(v, "6.") || strings.HasPrefix(v, "7.") || v == "8.0" || strings.HasPrefix(v, "8.0."))
}

func (s *Sim) poolMembers(p *pool) []any {
	members := []any{}
	ids := make([]int, 0, len(p.vms))
	for id := range p.vms {
		if s.vms[id] != nil {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	for _, id := range ids {
		m := s.vms[id]
		st := s.vmStatus(m, false)
		members = append(members, map[string]any{"id": fmt.Sprintf("qemu/%d", id), "type": "qemu", "vmid": id, "node": m.node,
			"name": st["name"], "status": st["status"], "template": b01(m.conf["template"] == "1"), "maxmem": st["maxmem"], "maxcpu": st["cpus"]})
	}
	return members
}

// hPoolsGet is GET /pools: the pools the caller may audit; with poolid,
// that pool with its members.
func hPoolsGet(c *call) (any, *apiError) {
	s := c.s
	if c.has("poolid") {
		if !s.newPoolAPI() {
			return nil, &apiError{code: 400, msg: "Parameter verification failed.", errors: map[string]string{"poolid": "property is not defined in schema and the schema does not allow additional properties"}, schema: true}
		}
		id := c.str("poolid")
		p := s.access.pools[id]
		if p == nil || !c.can("/pool/"+id, "Pool.Audit") {
			return nil, serverErr(fmt.Sprintf("pool '%s' does not exist", id))
		}
		e := map[string]any{"poolid": id, "members": s.poolMembers(p)}
		if p.comment != "" {
			e["comment"] = p.comment
		}
		return []any{e}, nil
	}
	out := []any{}
	for _, id := range sortedKeys(s.access.pools) {
		if !c.can("/pool/"+id, "Pool.Audit") {
			continue
		}
		e := map[string]any{"poolid": id}
		if p := s.access.pools[id]; p.comment != "" {
			e["comment"] = p.comment
		}
		out = append(out, e)
	}
	return out, nil
}

// hPoolGet is GET /pools/{poolid} (deprecated since 8.1, still served).
func hPoolGet(c *call) (any, *apiError) {
	id := c.str("poolid")
	p := c.s.access.pools[id]
	if p == nil {
		return nil, serverErr(fmt.Sprintf("pool '%s' does not exist", id))
	}
	e := map[string]any{"members": c.s.poolMembers(p)}
	if p.comment != "" {
		e["comment"] = p.comment
	}
	return e, nil
}

// hPoolPut is PUT /pools (8.1+) and PUT /pools/{poolid}
// (PVE::API2::Pool::update_pool; VMs only, storage members are not
// modelled).
func hPoolPut(c *call) (any, *apiError) {
	s := c.s
	if c.vars["poolid"] == "" && !s.newPoolAPI() {
		return nil, &apiError{code: 501, msg: fmt.Sprintf("Method '%s %s' not implemented", c.method, c.path)}
	}
	id := c.str("poolid")
	fail := func(msg string) (any, *apiError) { return nil, serverErr("update pools failed: " + msg) }
	p := s.access.pools[id]
	if p == nil {
		return fail(fmt.Sprintf("pool '%s' does not exist", id))
	}
	if c.has("storage") {
		return fail("storage pool members are not modelled by pvesim")
	}
	if c.has("comment") {
		p.comment = c.str("comment")
	}
	// all or nothing, as PVE writes user.cfg once at the end
	add, del := map[int]bool{}, map[int]bool{}
	moveFrom := map[int]string{}
	for _, v := range vmidListSplit.Split(strings.TrimSpace(c.str("vms")), -1) {
		if v == "" {
			continue
		}
		vmid, _ := strconv.Atoi(v)
		if e := c.checkModify("/vms/" + strconv.Itoa(vmid)); e != nil {
			return nil, e
		}
		if c.bool("delete") {
			if !p.vms[vmid] || del[vmid] {
				return fail(fmt.Sprintf("VM %d is not a pool member", vmid))
			}
			del[vmid] = true
			continue
		}
		if p.vms[vmid] || add[vmid] {
			return fail(fmt.Sprintf("VM %d is already a pool member", vmid))
		}
		if cur := s.poolOf(vmid); cur != "" {
			if !c.bool("allow-move") {
				return fail(fmt.Sprintf("VM %d belongs already to pool '%s' and 'allow-move' is not set", vmid, cur))
			}
			if !c.can("/pool/"+cur, "Pool.Allocate") {
				return nil, permErr("/pool/" + cur + ", Pool.Allocate")
			}
			moveFrom[vmid] = cur
		}
		if s.vms[vmid] == nil {
			return fail(fmt.Sprintf("VM %d does not exist", vmid))
		}
		add[vmid] = true
	}
	for vmid := range del {
		delete(p.vms, vmid)
	}
	for vmid := range add {
		if cur, ok := moveFrom[vmid]; ok {
			delete(s.access.pools[cur].vms, vmid)
		}
		p.vms[vmid] = true
	}
	return nil, nil
}

// ---- state inspection and setup (Go API and /_sim/access) ----------------------

// Access returns the access configuration now (sorted).
func (s *Sim) Access() AccessState {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.access
	st := AccessState{Users: sortedKeys(a.users), Groups: sortedKeys(a.groups), Tokens: sortedKeys(a.tokens), Pools: []PoolSpec{}, ACL: []ACLEntry{}, Roles: []string{}}
	for _, r := range sortedKeys(a.roles) {
		if !slices.Contains(BuiltinRoles, r) {
			st.Roles = append(st.Roles, r)
		}
	}
	for _, id := range sortedKeys(a.pools) {
		ps := PoolSpec{ID: id, Comment: a.pools[id].comment, VMs: []int{}}
		for vmid := range a.pools[id].vms {
			ps.VMs = append(ps.VMs, vmid)
		}
		sort.Ints(ps.VMs)
		st.Pools = append(st.Pools, ps)
	}
	for _, k := range sortedACLKeys(a.acl) {
		p := a.acl[k]
		st.ACL = append(st.ACL, ACLEntry{Path: k.path, RoleID: k.role, Type: k.typ, UGID: k.ugid, Propagate: &p})
	}
	return st
}

func sortedACLKeys(m map[aclKey]bool) []aclKey {
	keys := make([]aclKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		x, y := keys[i], keys[j]
		return x.path+"\x00"+x.typ+"\x00"+x.ugid+"\x00"+x.role < y.path+"\x00"+y.typ+"\x00"+y.ugid+"\x00"+y.role
	})
	return keys
}

// ACL returns the ACL entries on path ("" = all).
func (s *Sim) ACL(path string) []ACLEntry {
	var out []ACLEntry
	for _, e := range s.Access().ACL {
		if path == "" || e.Path == path {
			out = append(out, e)
		}
	}
	return out
}

// PoolOf returns the pool the VM is a member of ("" = none).
func (s *Sim) PoolOf(vmid int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.poolOf(vmid)
}

// AddUser creates a user (user@realm), as pveum user add.
func (s *Sim) AddUser(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !userIDRe.MatchString(id) {
		return fmt.Errorf("pvesim: %q is not user@realm", id)
	}
	s.access.users[id] = true
	return nil
}

// AddGroup creates a group.
func (s *Sim) AddGroup(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !groupIDRe.MatchString(id) {
		return fmt.Errorf("pvesim: invalid group name %q", id)
	}
	s.access.groups[id] = true
	return nil
}

// DeleteUser removes a user, its tokens and their ACL entries, as pveum
// user delete does (PVE::AccessControl::delete_user_acl).
func (s *Sim) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.access
	delete(a.users, id)
	for t := range a.tokens {
		if strings.HasPrefix(t, id+"!") {
			delete(a.tokens, t)
		}
	}
	for k := range a.acl {
		if (k.typ == "user" && k.ugid == id) || (k.typ == "token" && strings.HasPrefix(k.ugid, id+"!")) {
			delete(a.acl, k)
		}
	}
}

// AddPool creates a pool with its VM members.
func (s *Sim) AddPool(p PoolSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addPool(p)
}

// DeletePool removes a pool and the ACL entries on it, whatever its members
// (pveum pool delete refuses a pool with members; tests use this to model a
// pool that is gone).
func (s *Sim) DeletePool(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.access.pools, id)
	for k := range s.access.acl {
		if k.path == "/pool/"+id {
			delete(s.access.acl, k)
		}
	}
}

// SetACL adds an ACL entry (principal and role must exist).
func (s *Sim) SetACL(e ACLEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.setACL(e)
}

// serveAccessControl serves the /_sim/access control endpoints:
//
//	GET  /_sim/access                AccessState
//	POST /_sim/access/user           {"userid":"customer@pve"}
//	POST /_sim/access/group          {"groupid":"customers"}
//	POST /_sim/access/user/delete    {"userid":"customer@pve"}
//	POST /_sim/access/pool           PoolSpec {"poolid":"cust","vms":[1000]}
//	POST /_sim/access/pool/delete    {"poolid":"cust"}
//	POST /_sim/access/acl            ACLEntry {"path":"/vms/1000","roleid":"PVEVMUser","type":"user","ugid":"customer@pve"}
func (s *Sim) serveAccessControl(w http.ResponseWriter, r *http.Request, path string) bool {
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	decode := func(v any) bool {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": "bad JSON body: " + err.Error()})
			return false
		}
		return true
	}
	done := func(err error) {
		if err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		reply(200, s.Access())
	}
	switch r.Method + " " + path {
	case "GET /access":
		reply(200, s.Access())
	case "POST /access/user", "POST /access/user/delete":
		var b struct {
			UserID string `json:"userid"`
		}
		if !decode(&b) {
			return true
		}
		if strings.HasSuffix(path, "/delete") {
			s.DeleteUser(b.UserID)
			done(nil)
		} else {
			done(s.AddUser(b.UserID))
		}
	case "POST /access/group":
		var b struct {
			GroupID string `json:"groupid"`
		}
		if decode(&b) {
			done(s.AddGroup(b.GroupID))
		}
	case "POST /access/pool":
		var p PoolSpec
		if decode(&p) {
			done(s.AddPool(p))
		}
	case "POST /access/pool/delete":
		var b struct {
			PoolID string `json:"poolid"`
		}
		if decode(&b) {
			s.DeletePool(b.PoolID)
			done(nil)
		}
	case "POST /access/acl":
		var e ACLEntry
		if decode(&e) {
			done(s.SetACL(e))
		}
	default:
		return false
	}
	return true
}
