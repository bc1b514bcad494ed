package config

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// Notifications is the `notifications` section: where events (a VM ready,
// changed, terminated, held, …) are delivered. Each event is written to an
// outbox in the transaction of the change that caused it, one row per
// channel, and the notify task delivers it (at least once, with a stable
// id for de-duplication).
type Notifications struct {
	Webhook *Webhook `yaml:"webhook"`
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

// NotificationEvents are the events pvectl sends.
var NotificationEvents = []string{"vm_ready", "vm_changed", "vm_terminated", "vm_held", "terminate_failed",
	"backup_restored", "vm_suspended", "vm_unsuspended"}

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
	return errs
}
