package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

var (
	serviceIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	hostnameRE  = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// createDNSCheckTimeout bounds create's look at the DNS servers: the request returns at once.
const createDNSCheckTimeout = 3 * time.Second

// CreateVM is a request for a new VM.
type CreateVM struct {
	ServiceID      string
	Product        string
	Hostname       string // lower-cased, a trailing dot removed
	Node           string // "" = the product's target node
	IdempotencyKey string // "" = none
	// SSHKeyFile is a file of SSH public keys, one a line; SSHKeys gives
	// the same text directly (callers without a file). Both are checked by
	// the same rules.
	SSHKeyFile, SSHKeys string
	// PasswordFile is a file whose first line is the cloud-init password;
	// Password gives it directly. Never logged, never in the digest.
	PasswordFile, Password string
	// Template names the template, in the product's templates map, to
	// deploy from; "" = the product's default.
	Template string
}

// CreateVM validates a create request, refuses a hostname at which the DNS
// servers hold records that are not this VM's, and writes the record in
// state creation. With an idempotency key the same request again returns the
// existing VM (Changed false); the same key with other arguments is
// ErrConflict. Every input problem is reported together (*InvalidRequest).
func (e *Engine) CreateVM(ctx context.Context, r CreateVM) (Result, error) {
	keys, password, err := validateCreate(e.Config, &r)
	if err != nil {
		return Result{}, err
	}
	var res Result
	// A name that already holds records that are not this VM's would be hijacked.
	p, warning, err := e.foreignRecordsProblem(ctx, r.ServiceID, r.Hostname)
	if err != nil {
		return res, err
	}
	if p != nil {
		return res, &InvalidRequest{Problems: []*ErrInvalid{p}}
	}
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	opts := []string{"product " + r.Product, "hostname " + r.Hostname}
	if r.Node != "" {
		opts = append(opts, "node "+r.Node)
	}
	if r.Template != "" {
		opts = append(opts, "template "+r.Template)
	}
	if r.IdempotencyKey != "" {
		opts = append(opts, "idempotency key "+r.IdempotencyKey)
	}
	if n := strings.Count(keys, "\n"); n > 0 {
		opts = append(opts, fmt.Sprintf("%d SSH key(s)", n))
	}
	if password != "" {
		opts = append(opts, "password set")
	}
	audit := e.audit(r.ServiceID, "vm create", "", states.CreateTo(), opts...)
	vm, created, err := e.Store.Audited(audit).VMCreate(ctx, store.NewVM{ServiceID: r.ServiceID, Hostname: r.Hostname, Product: r.Product,
		Status: string(states.CreateTo()), RequestedNode: r.Node, IdempotencyKey: r.IdempotencyKey,
		RequestDigest: RequestDigest(r.ServiceID, r.Product, r.Hostname, r.Node, keys, r.Template), SSHKeys: keys, Password: password,
		Template: createTemplate(e.Config, r), Now: e.Clock.Now()})
	if errors.Is(err, store.ErrIdempotencyMismatch) || errors.Is(err, store.ErrDuplicate) {
		return res, &conflictError{msg: err.Error(), cause: err}
	}
	if err != nil {
		return res, err
	}
	res.VM, res.Changed = vm, created
	if created {
		res.Audit = audit
	} else {
		res.From = states.State(vm.Status)
	}
	return res, nil
}

// createTemplate is the template a new record gets: the one asked for, or
// the product's default by name (so a later default_template change does
// not change what a reinstall without --template installs).
func createTemplate(c *config.Config, r CreateVM) string {
	if r.Template != "" {
		return r.Template
	}
	return c.Products[r.Product].DefaultTemplateName()
}

// CheckCreateVM checks a create request's input against the config alone
// (no store, no DNS query), so a caller can refuse bad input before it opens
// anything; CreateVM checks it again.
func CheckCreateVM(c *config.Config, r CreateVM) error {
	_, _, err := validateCreate(c, &r)
	return err
}

// RequestDigest is a create request's idempotency digest. It covers service
// id, product, hostname, node, SSH keys and template, never the password:
// the digest stays in the store after the password itself is forgotten, and
// a hash of a password can be guessed. A request without a template has the
// digest it had before templates existed.
func RequestDigest(serviceID, product, hostname, node, sshKeys, template string) string {
	h := sha256.New()
	for _, s := range []string{serviceID, product, hostname, node, sshKeys} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	if template != "" {
		fmt.Fprintf(h, "template %d:%s;", len(template), template)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// validateCreate checks every input of a create request against the config
// and returns the SSH keys (normalised) and the password.
func validateCreate(c *config.Config, r *CreateVM) (keys, password string, err error) {
	var problems []*ErrInvalid
	add := func(field, format string, args ...any) {
		problems = append(problems, &ErrInvalid{Field: field, Rule: fmt.Sprintf(format, args...)})
	}
	if !serviceIDRE.MatchString(r.ServiceID) {
		add("--service-id", "--service-id %s: want 1-64 letters, digits, '.', '_' or '-'", quoteInput(r.ServiceID))
	}
	var p *ErrInvalid
	if r.Hostname, p = checkHostname(c, "--hostname", r.Hostname); p != nil {
		problems = append(problems, p)
	}
	if p, ok := c.Products[r.Product]; !ok {
		add("--product", "--product %s: valid: %s", quoteInput(r.Product), strings.Join(c.ProductNames(), ", "))
	} else if r.Template != "" {
		if _, err := p.TemplateFor(r.Template); err != nil {
			add("--template", "--template %s: product %s %s", quoteInput(r.Template), r.Product, templateRule(p))
		}
	}
	if r.Node != "" {
		if err := config.ValidNodeName(r.Node); err != nil {
			add("--node", "--node: %v", err)
		}
	}
	if p := checkIdempotencyKey(r.IdempotencyKey); p != nil {
		problems = append(problems, p)
	}
	switch {
	case r.SSHKeyFile != "":
		var p []*ErrInvalid
		keys, p = parseSSHKeyFile(r.SSHKeyFile)
		problems = append(problems, p...)
	case r.SSHKeys != "":
		var p []*ErrInvalid
		keys, p = parseSSHKeys("--ssh-key-file (given directly)", []byte(r.SSHKeys))
		problems = append(problems, p...)
	}
	switch {
	case r.PasswordFile != "":
		var err error
		if password, err = ReadPasswordFile(r.PasswordFile); err != nil {
			add("--password-file", "--password-file: %v", err)
		}
	case r.Password != "":
		if err := checkPassword(r.Password); err != nil {
			add("--password-file", "--password-file: %v", err)
		}
		password = r.Password
	}
	if len(problems) > 0 {
		return "", "", &InvalidRequest{Problems: problems}
	}
	return keys, password, nil
}

// checkHostname normalises a hostname (lower case, no trailing dot) and
// checks it: a fully qualified name, not a forward zone's apex unless the
// zone allows it. field names the input in the refusal.
func checkHostname(c *config.Config, field, hostname string) (string, *ErrInvalid) {
	hostname = strings.TrimSuffix(strings.ToLower(hostname), ".")
	if len(hostname) > 253 || !hostnameRE.MatchString(hostname) {
		return hostname, &ErrInvalid{Field: field, Rule: fmt.Sprintf("%s %s: want a fully qualified domain name like vm1.example.com", field, quoteInput(hostname))}
	}
	return hostname, apexProblem(c, field, hostname)
}

// apexProblem is create's refusal of a hostname that is the apex of a configured forward zone
// without allow_apex (config only, no query), or nil.
func apexProblem(c *config.Config, field, hostname string) *ErrInvalid {
	apex := states.ApexZones(DNSZones(c), c.DNS.ApexAllowed, hostname)
	if len(apex) == 0 {
		return nil
	}
	return &ErrInvalid{Field: field, Rule: fmt.Sprintf("%s %s: is the apex of DNS zone %s, where the zone's own records live (SOA, NS, the domain's web and mail); want a name inside the zone, like vm1.%s (or set allow_apex: true on the zone in the config)",
		field, quoteInput(hostname), apex[0], apex[0])}
}

// foreignRecordsProblem is create's refusal of a hostname at which a forward zone's server
// already holds records that are not this VM's, or nil. A create for a service id that exists
// is not checked: the store returns that VM for a repeat of the same request (its records are
// its own, and a VM held for its name shows why) and refuses any other. When the servers
// cannot be asked it returns a warning and lets the create go on: the DNS step checks again
// before it publishes anything.
func (e *Engine) foreignRecordsProblem(ctx context.Context, serviceID, hostname string) (*ErrInvalid, string, error) {
	c := e.Config
	zones := DNSZones(c)
	if len(dns.MatchForward(zones, hostname)) == 0 {
		return nil, "", nil
	}
	for _, ref := range []string{serviceID, hostname} {
		vm, err := e.Store.VMFind(ctx, ref)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, "", err
		case vm.ServiceID == serviceID:
			return nil, "", nil // a repeat, or a duplicate service id the store refuses
		case vm.Hostname == hostname && vm.Status != string(states.Remove):
			return nil, "", nil // the store refuses the name with its own message
		}
	}
	return e.nameFreeProblem(ctx, "--hostname", hostname)
}

// nameFreeProblem asks the forward zones' servers whether hostname holds
// records (none of them can be pvectl's: no live VM has the name) and
// returns field's refusal when it does, or a warning when they cannot be
// asked.
func (e *Engine) nameFreeProblem(ctx context.Context, field, hostname string) (*ErrInvalid, string, error) {
	c := e.Config
	zones := DNSZones(c)
	u := dns.NewUpdater(zones)
	u.Timeout = min(c.DNS.Timeout.D(), 2*time.Second)
	if u.Timeout <= 0 {
		u.Timeout = 2 * time.Second
	}
	qctx, cancel := context.WithTimeout(ctx, createDNSCheckTimeout)
	defer cancel()
	err := states.CheckHostname(qctx, u, zones, c.DNS.ApexAllowed, hostname, nil)
	var he *states.HostnameError
	switch {
	case err == nil:
		return nil, "", nil
	case errors.As(err, &he) && len(he.Apex) > 0:
		return apexProblem(c, field, hostname), "", nil
	case errors.As(err, &he):
		return &ErrInvalid{Field: field, Rule: fmt.Sprintf("%s %s: already has DNS records that are not this VM's: %s; want a hostname that holds no records yet (choose another name, or remove those records from the zone if they are stale)",
			field, quoteInput(hostname), states.DescribeRecords(he.Foreign))}, "", nil
	}
	return nil, fmt.Sprintf("could not check %s for DNS records that are not this VM's (%v); the DNS step checks again before it publishes anything",
		hostname, err), nil
}

// DNSZones are the configured DNS zones as the DNS provider takes them.
func DNSZones(c *config.Config) []dns.Zone {
	var out []dns.Zone
	for _, z := range c.DNS.Zones {
		out = append(out, dns.Zone{Name: z.Name, Server: z.Server, KeyName: z.KeyName, Algorithm: z.Algorithm, Secret: z.Secret.Reveal()})
	}
	return out
}

// NewDNSUpdater builds the DNS updater from the config, or nil when no zone is configured.
func NewDNSUpdater(c *config.Config) *dns.Updater {
	zones := DNSZones(c)
	if len(zones) == 0 {
		return nil
	}
	u := dns.NewUpdater(zones)
	u.Timeout = c.DNS.Timeout.D()
	return u
}
