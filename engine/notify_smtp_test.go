package engine_test

import (
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// mailbox is a real SMTP server on loopback (github.com/emersion/go-smtp)
// that wants AUTH PLAIN and can refuse the next messages.
type mailbox struct {
	mu     sync.Mutex
	refuse int
	auths  []string
	msgs   []string
	rcpts  [][]string
}

type mailSession struct {
	mb    *mailbox
	rcpts []string
	authd bool
}

func (mb *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{mb: mb}, nil }

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		s.mb.mu.Lock()
		defer s.mb.mu.Unlock()
		s.mb.auths = append(s.mb.auths, user+":"+pass)
		if user != "pvectl" || pass != "mail-s3cret" {
			return errors.New("invalid credentials")
		}
		s.authd = true
		return nil
	}), nil
}
func (s *mailSession) Mail(string, *smtp.MailOptions) error {
	if !s.authd {
		return smtp.ErrAuthRequired
	}
	return nil
}
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	if s.mb.refuse > 0 {
		s.mb.refuse--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mailbox busy, try later"}
	}
	s.mb.msgs = append(s.mb.msgs, string(b))
	s.mb.rcpts = append(s.mb.rcpts, s.rcpts)
	return nil
}
func (s *mailSession) Reset()        { s.rcpts = nil }
func (s *mailSession) Logout() error { return nil }

// Notifications by mail: delivered to a real SMTP server on loopback with
// AUTH, subject and body from the templates, the event id as Message-ID;
// a temporary refusal is retried.
func TestNotifySMTP(t *testing.T) {
	t.Parallel()
	mb := &mailbox{refuse: 1}
	srv := smtp.NewServer(mb)
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	port, _ := strconv.Atoi(strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"))

	h := newHarness(t, "")
	h.e.Config.Notifications = config.Notifications{MaxAttempts: 5, SMTP: &config.SMTP{Host: "127.0.0.1", Port: port, TLS: "none",
		Username: "pvectl", Password: "mail-s3cret", From: "pvectl@example.com", To: []string{"ops@example.com", "billing@example.com"},
		Timeout: config.Duration(5 * time.Second), Subject: config.DefaultMailSubject, Body: config.DefaultMailBody}}
	payload := `{"id":"pvectl-3-1764072000000-vm_held","event":"vm_held","at":"2026-11-25T12:00:00Z","service_id":"4711",` +
		`"hostname":"vm4711.example.com","product":"small","vmid":1000,"node":"pve1","status":"set_ip","detail":"403 Permission check failed"}`
	require.NoError(t, h.st.OutboxAdd(h.ctx, []store.OutboxEvent{{EventID: "pvectl-3-1764072000000-vm_held", Event: "vm_held",
		ServiceID: "4711", Payload: payload, Channels: []string{"smtp"}}}, t0))

	r, err := h.e.Notify(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, r.Failed, "451 refused")
	rows, err := h.st.OutboxList(h.ctx, false, 5)
	require.NoError(t, err)
	require.Contains(t, rows[0].LastError, "mailbox busy, try later")
	require.NotContains(t, rows[0].LastError, "mail-s3cret")

	h.at(5 * time.Minute)
	r, err = h.e.Notify(h.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, r.Delivered)

	mb.mu.Lock()
	defer mb.mu.Unlock()
	require.Len(t, mb.msgs, 1)
	require.Equal(t, []string{"ops@example.com", "billing@example.com"}, mb.rcpts[0])
	require.Contains(t, mb.auths, "pvectl:mail-s3cret")
	msg := mb.msgs[0]
	require.Contains(t, msg, "Subject: [pvectl] vm_held: 4711 (vm4711.example.com)")
	require.Contains(t, msg, "Message-ID: <pvectl-3-1764072000000-vm_held@pvectl>")
	require.Contains(t, msg, "X-Pvectl-Event: vm_held")
	require.Contains(t, msg, "Detail:   403 Permission check failed")
	require.Contains(t, msg, "VMID:     1000 on pve1")
}
