package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// templateNameRe is what a name in a product's templates map may look
// like: what billing passes as --template, so short and shell-safe.
var templateNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// TemplateNames lists the names a VM of the product may be deployed or
// reinstalled from, sorted; nil for a product with a single template.
func (p Product) TemplateNames() []string {
	if len(p.Templates) == 0 {
		return nil
	}
	names := make([]string, 0, len(p.Templates))
	for n := range p.Templates {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// TemplateFor returns the template a VM recorded with name is cloned from:
// "" is the product's default; any other name must be in the product's
// templates map. The error names what is valid.
func (p Product) TemplateFor(name string) (Template, error) {
	if name == "" {
		return p.Template, nil
	}
	if t, ok := p.Templates[name]; ok {
		return t, nil
	}
	if len(p.Templates) == 0 {
		return Template{}, fmt.Errorf("unknown template %q: the product has a single template (no templates map); omit --template", name)
	}
	return Template{}, fmt.Errorf("unknown template %q; valid: %s", name, strings.Join(p.TemplateNames(), ", "))
}

// DefaultTemplateName is the name of the product's default template, ""
// for a product with a single template.
func (p Product) DefaultTemplateName() string { return p.DefaultTemplate }

// normalizeTemplates sets Template to the default of a templates map (and
// DefaultTemplate to the only entry of a one-entry map), before validation.
func (p *Product) normalizeTemplates() {
	if len(p.Templates) == 0 || p.Template != (Template{}) {
		p.bothTemplates = len(p.Templates) > 0
		return
	}
	if p.DefaultTemplate == "" && len(p.Templates) == 1 {
		for n := range p.Templates {
			p.DefaultTemplate = n
		}
	}
	if t, ok := p.Templates[p.DefaultTemplate]; ok {
		p.Template = t
	}
}

// validateTemplates checks template, templates and default_template.
func (c *Config) validateTemplates(k string, p Product) []error {
	var errs []error
	bad := func(key, format string, args ...any) { errs = append(errs, c.Errorf(k+"."+key, format, args...)) }
	one := func(key string, t Template) {
		if t.VMID < 100 {
			bad(key+".vmid", "required: the template's VMID (>= 100)")
		}
		if t.Node == "" {
			bad(key+".node", "required: the node the template lives on")
		} else if err := ValidNodeName(t.Node); err != nil {
			bad(key+".node", "%v", err)
		}
	}
	if len(p.Templates) == 0 {
		if p.DefaultTemplate != "" {
			bad("default_template", "needs a templates map to name an entry of; with a single template use template: {vmid, node}")
		}
		one("template", p.Template)
		return errs
	}
	if p.bothTemplates {
		bad("template", "use either template (one template) or templates with default_template (several), not both")
		return errs
	}
	if p.DefaultTemplate == "" {
		bad("default_template", "required with more than one template: the name VMs are deployed from without --template (valid: %s)", strings.Join(p.TemplateNames(), ", "))
	}
	for _, n := range p.TemplateNames() {
		if !templateNameRe.MatchString(n) {
			bad("templates", "invalid template name %q: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63", n)
		}
		one("templates."+n, p.Templates[n])
	}
	if p.DefaultTemplate != "" {
		if _, ok := p.Templates[p.DefaultTemplate]; !ok {
			bad("default_template", "unknown template %q; valid: %s", p.DefaultTemplate, strings.Join(p.TemplateNames(), ", "))
		}
	}
	return errs
}
