package config_test

import (
	"strings"
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

// A product may offer several templates (operating systems); the default
// is what a deploy without --template uses, and Template is always it.
func TestProductTemplates(t *testing.T) {
	t.Parallel()
	withTemplates := func(lines string) string {
		return strings.Replace(minimal, "    template: {vmid: 9000, node: pve1}\n", lines, 1)
	}
	tests := []struct {
		name        string
		yaml        string
		wantErr     string
		wantDefault config.Template
		wantName    string
		wantNames   []string
	}{
		{name: "single template", yaml: minimal, wantDefault: config.Template{VMID: 9000, Node: "pve1"}},
		{name: "map with a default", yaml: withTemplates("    templates:\n      debian-12: {vmid: 9000, node: pve1}\n      ubuntu-24.04: {vmid: 9001, node: pve2}\n    default_template: ubuntu-24.04\n"),
			wantDefault: config.Template{VMID: 9001, Node: "pve2"}, wantName: "ubuntu-24.04", wantNames: []string{"debian-12", "ubuntu-24.04"}},
		{name: "one entry is the default", yaml: withTemplates("    templates:\n      debian-12: {vmid: 9000, node: pve1}\n"),
			wantDefault: config.Template{VMID: 9000, Node: "pve1"}, wantName: "debian-12", wantNames: []string{"debian-12"}},
		{name: "several, no default", yaml: withTemplates("    templates:\n      debian-12: {vmid: 9000, node: pve1}\n      alma-9: {vmid: 9002, node: pve1}\n"),
			wantErr: "products.small.default_template: required with more than one template: the name VMs are deployed from without --template (valid: alma-9, debian-12)"},
		{name: "unknown default", yaml: withTemplates("    templates:\n      debian-12: {vmid: 9000, node: pve1}\n    default_template: debian-13\n"),
			wantErr: `products.small.default_template: unknown template "debian-13"; valid: debian-12`},
		{name: "both forms", yaml: strings.Replace(minimal, "    network:", "    templates:\n      debian-12: {vmid: 9000, node: pve1}\n    network:", 1),
			wantErr: "products.small.template: use either template (one template) or templates with default_template (several), not both"},
		{name: "bad name", yaml: withTemplates("    templates:\n      Debian 12: {vmid: 9000, node: pve1}\n"),
			wantErr: `products.small.templates: invalid template name "Debian 12"`},
		{name: "entry without node", yaml: withTemplates("    templates:\n      debian-12: {vmid: 9000}\n"),
			wantErr: "products.small.templates.debian-12.node: required: the node the template lives on"},
		{name: "default_template without a map", yaml: strings.Replace(minimal, "    network:", "    default_template: debian-12\n    network:", 1),
			wantErr: "products.small.default_template: needs a templates map"},
		{name: "no template at all", yaml: withTemplates(""), wantErr: "products.small.template.vmid: required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("pvectl.yaml", []byte(tc.yaml))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			p := c.Products["small"]
			require.Equal(t, tc.wantDefault, p.Template)
			require.Equal(t, tc.wantName, p.DefaultTemplateName())
			require.Equal(t, tc.wantNames, p.TemplateNames())
			got, err := p.TemplateFor("")
			require.NoError(t, err)
			require.Equal(t, tc.wantDefault, got)
			_, err = p.TemplateFor("freebsd-14")
			require.ErrorContains(t, err, `unknown template "freebsd-14"`)
		})
	}
}

func TestSuspendKeepAccess(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("pvectl.yaml", []byte(minimal+"suspend:\n  keep_access: [admin@pam, '@ops', 'billing@pve!sync']\n"))
	require.NoError(t, err)
	require.True(t, c.Suspend.RevokeAccessOn())
	require.Equal(t, []string{"admin@pam", "@ops", "billing@pve!sync"}, c.Suspend.KeepAccess)
	c, err = config.Parse("pvectl.yaml", []byte(minimal+"suspend:\n  revoke_access: false\n"))
	require.NoError(t, err)
	require.False(t, c.Suspend.RevokeAccessOn())
	for _, bad := range []string{"admin", "'admin@pam!x'", "'@'", "'a b@pam'"} {
		_, err = config.Parse("pvectl.yaml", []byte(minimal+"suspend:\n  keep_access: ["+bad+"]\n"))
		require.ErrorContains(t, err, `suspend.keep_access: entry 0 "`+strings.Trim(bad, "'")+`" is not a PVE principal; valid: user@realm, @group or user@realm!token`)
	}
}
