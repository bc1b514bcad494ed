package proxmox

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
)

// Access control: ACL entries (GET/PUT /access/acl) and pool membership
// (PUT /pools). The same requests are valid on PVE 8.4 and 9.2; PUT /pools
// with poolid as a parameter came with nested pools in 8.1, so an older PVE
// that answers 501 gets the deprecated PUT /pools/{poolid}.

type aclJSON struct {
	Path      string    `json:"path"`
	RoleID    string    `json:"roleid"`
	Type      string    `json:"type"`
	UGID      string    `json:"ugid"`
	Propagate *flexBool `json:"propagate"`
}

// ACL implements Client.
func (a *Adapter) ACL(ctx context.Context) ([]ACLEntry, error) {
	var raw []aclJSON
	if err := a.call(ctx, callInfo{method: http.MethodGet, path: "/access/acl", tmpl: "/access/acl"}, nil, &raw); err != nil {
		return nil, err
	}
	out := make([]ACLEntry, 0, len(raw))
	for _, r := range raw {
		out = append(out, ACLEntry{Path: r.Path, RoleID: r.RoleID, Type: r.Type, UGID: r.UGID,
			Propagate: r.Propagate == nil || bool(*r.Propagate)}) // PVE's default is 1
	}
	return out, nil
}

// Permissions implements Client. PVE answers a map path → privilege →
// propagate flag; a privilege listed is held on the path whatever the flag
// (it says whether the grant also holds below the path).
func (a *Adapter) Permissions(ctx context.Context, path string) (map[string]bool, error) {
	if path == "" || path[0] != '/' {
		return nil, errorf(ClassInvalid, "permissions", "an ACL path starting with / is required, got %q", path)
	}
	var raw map[string]map[string]flexBool
	if err := a.call(ctx, callInfo{method: http.MethodGet, path: "/access/permissions"}, map[string]any{"path": path}, &raw); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for priv := range raw[path] {
		out[priv] = true
	}
	return out, nil
}

// GrantACL implements Client.
func (a *Adapter) GrantACL(ctx context.Context, e ACLEntry) error {
	return a.updateACL(ctx, "grant acl", e, false)
}

// RevokeACL implements Client.
func (a *Adapter) RevokeACL(ctx context.Context, e ACLEntry) error {
	return a.updateACL(ctx, "revoke acl", e, true)
}

func (a *Adapter) updateACL(ctx context.Context, op string, e ACLEntry, del bool) error {
	if e.Path == "" || e.RoleID == "" || e.UGID == "" {
		return errorf(ClassInvalid, op, "path, role and principal are required")
	}
	p := map[string]any{"path": e.Path, "roles": e.RoleID}
	switch e.Type {
	case ACLUser:
		p["users"] = e.UGID
	case ACLGroup:
		p["groups"] = e.UGID
	case ACLToken:
		p["tokens"] = e.UGID
	default:
		return errorf(ClassInvalid, op, "unknown ACL entry type %q (want user, group or token)", e.Type)
	}
	if del {
		p["delete"] = 1
	} else {
		p["propagate"] = boolInt(e.Propagate)
	}
	return a.call(ctx, callInfo{method: http.MethodPut, path: "/access/acl", tmpl: "/access/acl"}, p, nil)
}

// AddToPool implements Client.
func (a *Adapter) AddToPool(ctx context.Context, pool string, vmid int) error {
	return a.updatePool(ctx, "add to pool", pool, vmid, false)
}

// RemoveFromPool implements Client.
func (a *Adapter) RemoveFromPool(ctx context.Context, pool string, vmid int) error {
	return a.updatePool(ctx, "remove from pool", pool, vmid, true)
}

func (a *Adapter) updatePool(ctx context.Context, op, pool string, vmid int, del bool) error {
	if pool == "" || vmid < 100 {
		return &Error{Class: ClassInvalid, Op: op, VMID: vmid, Message: "a pool and a VMID >= 100 are required"}
	}
	p := map[string]any{"vms": strconv.Itoa(vmid)}
	if del {
		p["delete"] = 1
	}
	withID := map[string]any{"poolid": pool}
	for k, v := range p {
		withID[k] = v
	}
	err := a.call(ctx, callInfo{method: http.MethodPut, path: "/pools", tmpl: "/pools", vmid: vmid}, withID, nil)
	var pe *Error
	if errors.As(err, &pe) && pe.HTTPStatus == http.StatusNotImplemented {
		// PVE before 8.1: only the per-pool path exists.
		err = a.call(ctx, callInfo{method: http.MethodPut, path: "/pools/" + url.PathEscape(pool), tmpl: "/pools/{poolid}", vmid: vmid}, p, nil)
	}
	return err
}
