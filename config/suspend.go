package config

import (
	"regexp"
)

// Suspend is how a billing suspend treats customers' access to the VM
// in Proxmox (the `suspend` section).
type Suspend struct {
	// RevokeAccess: while a VM is suspended, the ACL entries on its path
	// (/vms/VMID) and its pool membership are removed, and given back
	// at unsuspend. Default true.
	RevokeAccess *bool `yaml:"revoke_access"`
	// KeepAccess lists principals whose ACL entries are never removed:
	// users (user@realm), groups (@group) and API tokens
	// (user@realm!token). pvectl's own token user is always kept.
	KeepAccess []string `yaml:"keep_access"`
}

// RevokeAccessOn reports whether suspend removes customers' PVE access.
func (s Suspend) RevokeAccessOn() bool { return s.RevokeAccess == nil || *s.RevokeAccess }

// principalRe: user@realm, @group, or user@realm!token, as PVE writes them.
// PVE's token ids are at least two characters (pve-tokenid: [A-Za-z][A-Za-z0-9.\-_]+).
var principalRe = regexp.MustCompile(`^(@[A-Za-z0-9._-]+|[^\s:/@!]+@[A-Za-z0-9._-]+(![A-Za-z][A-Za-z0-9._-]+)?)$`)

func (c *Config) validateSuspend() []error {
	var errs []error
	for i, p := range c.Suspend.KeepAccess {
		if !principalRe.MatchString(p) {
			errs = append(errs, c.Errorf("suspend.keep_access", "entry %d %q is not a PVE principal; valid: user@realm, @group or user@realm!token", i, p))
		}
	}
	return errs
}
