package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"text/template"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/pvectl/pvectl/states"
	"github.com/pvectl/pvectl/store"
)

// NotifyInterval is the notify task's default interval.
const NotifyInterval = time.Minute

// notifyBatch is how many deliveries one notify run makes at most.
const notifyBatch = 200

// NotifyTask delivers the outbox (docs/monitoring.md#notifications).
func NotifyTask() Task {
	return Task{
		Name:            "notify",
		Description:     "deliver notifications from the outbox (webhook, mail), retrying with backoff; a delivery failing notifications.max_attempts times is parked",
		DefaultInterval: NotifyInterval,
		Run: func(ctx context.Context, e *Engine) (TaskCounts, error) {
			r, err := e.Notify(ctx)
			return TaskCounts{Processed: r.Processed, Errors: r.Failed, Message: r.Message}, err
		},
	}
}

// EventPayload is the JSON body of a notification. ID is stable across
// delivery attempts: a receiver that saw it already drops it.
type EventPayload struct {
	ID        string    `json:"id"`
	Event     string    `json:"event"`
	At        time.Time `json:"at"`
	ServiceID string    `json:"service_id"`
	Hostname  string    `json:"hostname"`
	Product   string    `json:"product"`
	VMID      int       `json:"vmid,omitempty"`
	Node      string    `json:"node,omitempty"`
	Status    string    `json:"status"`
	Detail    string    `json:"detail,omitempty"`
}

// eventOf names the notification a step's outcome causes ("" none): the
// VM reached ready after a deploy (vm_ready), a change-package or rename
// (vm_changed) or a restore (backup_restored); it was suspended,
// unsuspended, terminated; it was held; its terminate failed.
func eventOf(cur store.VM, o store.Outcome) (event, detail string) {
	from, to := states.State(cur.Status), states.State(o.ToStatus)
	switch {
	case o.Held && !cur.Held:
		return "vm_held", o.LastError
	case from == to:
		return "", ""
	case to == states.ErrorTerminate:
		return "terminate_failed", o.LastError
	case to == states.Remove:
		return "vm_terminated", ""
	case to == states.Suspended:
		return "vm_suspended", cur.SuspendReason
	case to != states.Ready:
		return "", ""
	}
	switch from {
	case states.Starting:
		return "vm_ready", ""
	case states.CPStart:
		if cur.RestoreVolid != "" {
			return "backup_restored", cur.RestoreVolid
		}
		return "vm_changed", "product " + cur.Product
	case states.HostnameRenamed:
		return "vm_changed", "hostname " + cur.Hostname
	case states.UnsuspendRestored:
		return "vm_unsuspended", ""
	}
	return "", ""
}

// outboxFor is the outbox rows of the event a step's outcome causes, for
// the configured channels (none when notifications are off or the event
// is filtered out).
func (e *Engine) outboxFor(cur store.VM, o store.Outcome) []store.OutboxEvent {
	ev, detail := eventOf(cur, o)
	if ev == "" {
		return nil
	}
	return e.eventRows(cur, ev, fmt.Sprintf("pvectl-%d-%d-%s", cur.ID, o.Now.UnixMilli(), ev), o.ToStatus, detail, o.Now)
}

// backupFailed is the backup_failed notification of backup b of vm (its id
// is the backup row's, so a repeat is the same event).
func (e *Engine) backupFailed(vm store.VM, b store.Backup, errText string, now time.Time) []store.OutboxEvent {
	return e.eventRows(vm, "backup_failed", fmt.Sprintf("pvectl-%d-backup-%d-backup_failed", vm.ID, b.ID), vm.Status, errText, now)
}

// eventRows is the outbox rows of event ev about vm for the configured
// channels (none when notifications are off or ev is filtered out).
func (e *Engine) eventRows(vm store.VM, ev, id, status, detail string, now time.Time) []store.OutboxEvent {
	n := e.Config.Notifications
	chans := n.Channels()
	if len(chans) == 0 || !n.Wants(ev) {
		return nil
	}
	p := EventPayload{ID: id, Event: ev, At: now.UTC(), ServiceID: vm.ServiceID, Hostname: vm.Hostname, Product: vm.Product,
		VMID: vm.VMID, Node: vm.Node, Status: status, Detail: detail}
	b, _ := json.Marshal(p) // plain values: cannot fail
	return []store.OutboxEvent{{EventID: p.ID, Event: ev, ServiceID: vm.ServiceID, Payload: string(b), Channels: chans}}
}

// NotifyRun is what one notify run did.
type NotifyRun struct {
	Processed, Delivered, Failed, Parked int
	Message                              string
}

// notifyBackoff is the delay before delivery attempt attempts+1: 1, 2, 4 …
// minutes, at most an hour, with jitter.
func notifyBackoff(attempts int) time.Duration {
	d := time.Minute
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Notify delivers the due outbox rows, oldest first. A delivery is
// recorded after the receiver answered 2xx; a crash in between delivers
// it again (at least once; the id lets the receiver drop the repeat).
func (e *Engine) Notify(ctx context.Context) (NotifyRun, error) {
	var r NotifyRun
	now := e.Clock.Now()
	rows, err := e.Store.OutboxDue(ctx, now, notifyBatch)
	if err != nil {
		return r, err
	}
	maxAttempts := e.Config.Notifications.MaxAttempts
	for _, row := range rows {
		if ctx.Err() != nil {
			break
		}
		r.Processed++
		err := e.deliver(ctx, row)
		now := e.Clock.Now()
		if err == nil {
			if err := e.Store.OutboxDelivered(ctx, row.ID, now); err != nil {
				return r, err
			}
			r.Delivered++
			continue
		}
		r.Failed++
		park := row.Attempts+1 >= maxAttempts
		next := now.Add(notifyBackoff(row.Attempts + 1))
		if park {
			r.Parked++
			e.Live.Logger().Error().Str("vm", row.ServiceID).Msgf("notify: %s %s of %s parked after %d attempts: %v (pvectl notifications --failed)",
				row.Channel, row.Event, row.ServiceID, row.Attempts+1, err)
		} else {
			e.Live.Logger().Warn().Str("vm", row.ServiceID).Msgf("notify: %s %s of %s failed (attempt %d of %d; next in %s): %v",
				row.Channel, row.Event, row.ServiceID, row.Attempts+1, maxAttempts, next.Sub(now).Round(time.Second), err)
		}
		if err := e.Store.OutboxFailed(ctx, row.ID, err.Error(), next, park, now); err != nil {
			return r, err
		}
	}
	if r.Processed > 0 {
		r.Message = fmt.Sprintf("%d delivered, %d failed, %d parked", r.Delivered, r.Failed, r.Parked)
	}
	return r, nil
}

// deliver sends one outbox row over its channel.
func (e *Engine) deliver(ctx context.Context, row store.OutboxRow) error {
	switch row.Channel {
	case "webhook":
		return e.deliverWebhook(ctx, row)
	case "smtp":
		return e.deliverSMTP(ctx, row)
	}
	return fmt.Errorf("channel %q is not configured any more", row.Channel)
}

// SignatureHeader carries the body's HMAC-SHA256 with the webhook secret.
const SignatureHeader = "X-Pvectl-Signature"

// Sign is the SignatureHeader value of body: "sha256=" and the hex HMAC.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliverWebhook POSTs the event's JSON to the webhook URL (TLS verified by
// Go's default transport) with its signature, event name and id headers;
// any 2xx is delivered.
func (e *Engine) deliverWebhook(ctx context.Context, row store.OutboxRow) error {
	w := e.Config.Notifications.Webhook
	if w == nil {
		return fmt.Errorf("channel webhook is not configured any more")
	}
	ctx, cancel := context.WithTimeout(ctx, w.Timeout.D())
	defer cancel()
	body := []byte(row.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pvectl-notify")
	req.Header.Set("X-Pvectl-Event", row.Event)
	req.Header.Set("X-Pvectl-Delivery", row.EventID)
	req.Header.Set(SignatureHeader, Sign([]byte(w.Secret.Reveal()), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", w.URL, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", w.URL, resp.Status, bytes.TrimSpace(snippet))
	}
	return nil
}

// deliverSMTP mails the event to notifications.smtp.to: subject and body
// from the configured templates, Message-ID from the event id (a repeat
// after a crash carries the same one), STARTTLS required, implicit TLS or
// none as configured, SMTP AUTH when a username is set.
func (e *Engine) deliverSMTP(ctx context.Context, row store.OutboxRow) error {
	m := e.Config.Notifications.SMTP
	if m == nil {
		return fmt.Errorf("channel smtp is not configured any more")
	}
	var p EventPayload
	if err := json.Unmarshal([]byte(row.Payload), &p); err != nil {
		return fmt.Errorf("event %s: %w", row.EventID, err)
	}
	render := func(name, tpl string) (string, error) {
		t, err := template.New(name).Option("missingkey=error").Parse(tpl)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if err := t.Execute(&b, p); err != nil {
			return "", fmt.Errorf("notifications.smtp.%s: %w", name, err)
		}
		return b.String(), nil
	}
	subject, err := render("subject", m.Subject)
	if err != nil {
		return err
	}
	body, err := render("body", m.Body)
	if err != nil {
		return err
	}
	msg := mail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return err
	}
	if err := msg.To(m.To...); err != nil {
		return err
	}
	msg.Subject(strings.ReplaceAll(subject, "\n", " "))
	msg.SetBodyString(mail.TypeTextPlain, body)
	msg.SetMessageIDWithValue(row.EventID + "@pvectl")
	msg.SetGenHeader("X-Pvectl-Event", row.Event)
	opts := []mail.Option{mail.WithPort(m.Port), mail.WithTimeout(m.Timeout.D())}
	switch m.TLS {
	case "implicit":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if m.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(m.Username), mail.WithPassword(m.Password.Reveal()))
	}
	c, err := mail.NewClient(m.Host, opts...)
	if err != nil {
		return err
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail to %s via %s:%d: %w", strings.Join(m.To, ", "), m.Host, m.Port, err)
	}
	return nil
}
