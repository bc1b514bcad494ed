package config

import (
	"errors"
	"fmt"
	"regexp"
)

// ErrInvalidNodeName is matched (errors.Is) by ValidNodeName's errors.
var ErrInvalidNodeName = errors.New("invalid node name")

// nodeName is PVE's pve-node format (PVE::JSONSchema::pve_verify_node_name),
// a DNS label: letters, digits and hyphens, not starting or ending with a hyphen.
var nodeName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$`)

// MaxNodeNameLen is the longest node name: one DNS label.
const MaxNodeNameLen = 63

// ValidNodeName reports whether name can be a PVE node name (the API's
// pve-node format, at most 63 characters). It checks the form only, not that
// such a node exists. The error says what is valid and wraps ErrInvalidNodeName.
func ValidNodeName(name string) error {
	if nodeName.MatchString(name) && len(name) <= MaxNodeNameLen {
		return nil
	}
	what := fmt.Sprintf("%q", name)
	if len(name) > MaxNodeNameLen {
		what = fmt.Sprintf("%q... (%d characters)", name[:20], len(name))
	}
	return fmt.Errorf("%w %s: a PVE node name is 1 to %d letters, digits and hyphens, starting and ending with a letter or digit, like pve1",
		ErrInvalidNodeName, what, MaxNodeNameLen)
}
