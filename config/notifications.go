package config

import (
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"
)

// Notifications is the `notifications` section: where events (a VM ready,
// changed, terminated, held, …) are delivered. Each event is written to an
// outbox in the transaction of the change that caused it, one row per
// channel, and the notify task delivers it (at least once, with a stable
// id for de-duplication).
type Notifications struct {
	Webhook *Webhook `yaml:"webhook"`
	SMTP    *SMTP    `yaml:"smtp"`
	// Events limits what is sent (names in NotificationEvents); empty = all.
	Events []string `yaml:"events"`
	// MaxAttempts: a delivery failing this many times is parked (shown by
	// pvectl notifications --failed and pvectl health); default 10.
	MaxAttempts int `yaml:"max_attempts" valid:"1 or more"`
}

// Webhook delivers events as a JSON POST signed with HMAC-SHA256.
type Webhook struct {
	URL string `yaml:"url"`
	// Secret signs the body: header X-Pvectl-Signature: sha256=HEX.
	Secret  Secret   `yaml:"secret"`
	Timeout Duration `yaml:"timeout"` // default 10s
}

// SMTP delivers events as mail.
type SMTP struct {
	Host string `yaml:"host"`
	// Port: default 587 (STARTTLS), 465 with tls: implicit, 25 with none.
	Port int `yaml:"port" valid:"1..65535"`
	// TLS: starttls (default: STARTTLS required), implicit (TLS from the
	// first byte, "SMTPS"), or none (a relay on localhost only).
	TLS      string   `yaml:"tls"`
	Username string   `yaml:"username"`
	Password Secret   `yaml:"password"`
	From     string   `yaml:"from"`
	To       []string `yaml:"to"`
	Timeout  Duration `yaml:"timeout"` // default 10s
	// Subject and Body are Go text/templates over the event (fields Event,
	// ID, At, ServiceID, Hostname, Product, VMID, Node, Status, Detail).
	Subject string `yaml:"subject"`
	Body    string `yaml:"body"`
}

// Default mail templates.
const (
	DefaultMailSubject = "[pvectl] {{.Event}}: {{.ServiceID}} ({{.Hostname}})"
	DefaultMailBody    = `Event:    {{.Event}}
VM:       {{.ServiceID}} ({{.Hostname}}), product {{.Product}}
Status:   {{.Status}}{{if .VMID}}
VMID:     {{.VMID}} on {{.Node}}{{end}}{{if .Detail}}
Detail:   {{.Detail}}{{end}}
At:       {{.At}}
Event id: {{.ID}}
`
)

// NotificationEvents are the events pvectl sends.
var NotificationEvents = []string{"vm_ready", "vm_changed", "vm_terminated", "vm_held", "terminate_failed",
	"backup_failed", "backup_restored", "vm_suspended", "vm_unsuspended"}

// Notification defaults.
const (
	DefaultNotifyMaxAttempts = 10
	DefaultWebhookTimeout    = 10 * time.Second
)

// Channels lists the configured channels ("webhook").
func (n Notifications) Channels() []string {
	var out []string
	if n.Webhook != nil {
		out = append(out, "webhook")
	}
	if n.SMTP != nil {
		out = append(out, "smtp")
	}
	return out
}

// Wants reports whether event is sent.
func (n Notifications) Wants(event string) bool {
	return len(n.Events) == 0 || slices.Contains(n.Events, event)
}

func (c *Config) defaultNotifications() {
	n := &c.Notifications
	if n.MaxAttempts == 0 {
		n.MaxAttempts = DefaultNotifyMaxAttempts
	}
	if n.Webhook != nil && n.Webhook.Timeout == 0 {
		n.Webhook.Timeout = Duration(DefaultWebhookTimeout)
	}
	if m := n.SMTP; m != nil {
		if m.TLS == "" {
			m.TLS = "starttls"
		}
		if m.Port == 0 {
			m.Port = map[string]int{"starttls": 587, "implicit": 465, "none": 25}[m.TLS]
		}
		if m.Timeout == 0 {
			m.Timeout = Duration(DefaultWebhookTimeout)
		}
		if m.Subject == "" {
			m.Subject = DefaultMailSubject
		}
		if m.Body == "" {
			m.Body = DefaultMailBody
		}
	}
}

func (c *Config) validateNotifications() []error {
	var errs []error
	n := c.Notifications
	if n.MaxAttempts < 0 {
		errs = append(errs, c.Errorf("notifications.max_attempts", "must be 1 or more, got %d", n.MaxAttempts))
	}
	for _, ev := range n.Events {
		if !slices.Contains(NotificationEvents, ev) {
			errs = append(errs, c.Errorf("notifications.events", "unknown event %q; valid: %s", ev, strings.Join(NotificationEvents, ", ")))
		}
	}
	if w := n.Webhook; w != nil {
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			errs = append(errs, c.Errorf("notifications.webhook.url", "is required (https://…)"))
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			errs = append(errs, c.Errorf("notifications.webhook.url", "must be an http or https URL, got %q", w.URL))
		}
		if w.Secret == "" {
			errs = append(errs, c.Errorf("notifications.webhook.secret", "is required: the receiver checks the X-Pvectl-Signature header with it"))
		}
	}
	if m := n.SMTP; m != nil {
		k := "notifications.smtp."
		if m.Host == "" {
			errs = append(errs, c.Errorf(k+"host", "is required"))
		}
		if !slices.Contains([]string{"starttls", "implicit", "none"}, m.TLS) {
			errs = append(errs, c.Errorf(k+"tls", "%q is not one of: starttls (STARTTLS required, port 587), implicit (TLS from the start, port 465), none (no TLS: a relay on localhost)", m.TLS))
		}
		if m.Port < 1 || m.Port > 65535 {
			errs = append(errs, c.Errorf(k+"port", "must be 1..65535, got %d", m.Port))
		}
		if _, err := mail.ParseAddress(m.From); err != nil {
			errs = append(errs, c.Errorf(k+"from", "must be a mail address, got %q", m.From))
		}
		if len(m.To) == 0 {
			errs = append(errs, c.Errorf(k+"to", "needs at least one address"))
		}
		for _, to := range m.To {
			if _, err := mail.ParseAddress(to); err != nil {
				errs = append(errs, c.Errorf(k+"to", "%q is not a mail address", to))
			}
		}
		if (m.Username == "") != (m.Password == "") {
			errs = append(errs, c.Errorf(k+"username", "username and password go together (both for SMTP AUTH, neither without)"))
		}
		for _, t := range [][2]string{{"subject", m.Subject}, {"body", m.Body}} {
			if _, err := template.New(t[0]).Option("missingkey=error").Parse(t[1]); err != nil {
				errs = append(errs, c.Errorf(k+t[0], "is not a valid template: %v", err))
			}
		}
	}
	return errs
}
