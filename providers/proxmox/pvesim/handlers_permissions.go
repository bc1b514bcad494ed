package pvesim

import (
	"sort"
	"strings"
)

// Privileges are PVE 8.4's privileges (PVE::AccessControl's
// $privgroups and special privileges), what GET /access/permissions
// lists for a token without privilege separation.
var Privileges = []string{
	"Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
	"Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify",
	"Pool.Allocate", "Pool.Audit", "Realm.Allocate", "Realm.AllocateUser",
	"SDN.Allocate", "SDN.Audit", "SDN.Use",
	"Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
	"User.Modify",
	"VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Cloudinit",
	"VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options",
	"VM.Console", "VM.Migrate", "VM.Monitor", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback",
}

// permissionPaths are the paths PVE always dumps without a path parameter
// (PVE::API2::AccessControl permissions), besides the ACL's own.
var permissionPaths = []string{"/", "/access", "/access/groups", "/nodes", "/pool", "/sdn", "/storage", "/vms"}

// hPermissions is GET /access/permissions (PVE::API2::AccessControl
// permissions): the effective privileges of the caller (or of userid, which
// needs Sys.Audit on /access unless it is the caller), as a map path →
// privilege → propagate (1: the privilege holds below the path too). With
// path, only that path. The simulated token's privileges are its
// TokenSpec.Grants (every privilege everywhere without grants), which
// propagate.
func hPermissions(c *call) (any, *apiError) {
	grants, limited := c.grants, c.limited
	if c.has("userid") && c.str("userid") != c.user {
		if !c.can("/access", "Sys.Audit") {
			return nil, permErr("")
		}
		grants, limited = nil, true // a user or token pvesim does not model holds nothing
		for _, t := range c.s.cluster.Tokens {
			if t.ID == c.str("userid") {
				grants, limited = t.Grants, len(t.Grants) > 0
			}
		}
	}
	var paths []string
	if c.has("path") {
		paths = []string{c.str("path")}
	} else {
		seen := map[string]bool{}
		for _, p := range permissionPaths {
			seen[p] = true
		}
		for _, g := range grants {
			seen["/"+strings.Trim(g.Path, "/")] = true
		}
		for p := range seen {
			paths = append(paths, p)
		}
		sort.Strings(paths)
	}
	out := map[string]map[string]int{}
	for _, p := range paths {
		privs := map[string]int{}
		for _, priv := range Privileges {
			if !limited || allowed(grants, p, priv) {
				privs[priv] = 1
			}
		}
		out[p] = privs
	}
	return out, nil
}

// SetTokenGrants limits the token id to grants (privilege separation), or
// lifts the limit with none; what a test does to a token in the PVE GUI.
func (s *Sim) SetTokenGrants(id string, grants []Grant) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.cluster.Tokens {
		if s.cluster.Tokens[i].ID == id {
			s.cluster.Tokens[i].Grants = grants
			return true
		}
	}
	return false
}
