package config_test

import (
	"testing"

	"github.com/pvectl/pvectl/config"
	"github.com/stretchr/testify/require"
)

func TestNotificationsSection(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("pvectl.yaml", []byte(minimal+`notifications:
  webhook: {url: "https://hooks.example.com/pvectl", secret: s}
  smtp: {host: mail.example.com, from: pvectl@example.com, to: [ops@example.com]}
`))
	require.NoError(t, err)
	n := c.Notifications
	require.Equal(t, []string{"webhook", "smtp"}, n.Channels())
	require.Equal(t, 10, n.MaxAttempts)
	require.Equal(t, "starttls", n.SMTP.TLS)
	require.Equal(t, 587, n.SMTP.Port)
	require.Equal(t, config.DefaultMailSubject, n.SMTP.Subject)
	require.True(t, n.Wants("vm_held"))

	for _, tc := range []struct{ section, want string }{
		{"notifications: {events: [vm_exploded]}", `notifications.events: unknown event "vm_exploded"; valid: vm_ready,`},
		{"notifications: {webhook: {url: ftp://x, secret: s}}", `notifications.webhook.url: must be an http or https URL, got "ftp://x"`},
		{"notifications: {webhook: {url: https://x}}", "notifications.webhook.secret: is required"},
		{"notifications: {smtp: {host: m, tls: ssl, from: a@b.c, to: [d@e.f]}}", `notifications.smtp.tls: "ssl" is not one of: starttls`},
		{"notifications: {smtp: {host: m, from: nobody, to: [d@e.f]}}", `notifications.smtp.from: must be a mail address, got "nobody"`},
		{"notifications: {smtp: {host: m, from: a@b.c}}", "notifications.smtp.to: needs at least one address"},
		{"notifications: {smtp: {host: m, from: a@b.c, to: [d@e.f], username: u}}", "notifications.smtp.username: username and password go together"},
		{`notifications: {smtp: {host: m, from: a@b.c, to: [d@e.f], subject: "{{.Event"}}`, "notifications.smtp.subject: is not a valid template"},
	} {
		_, err := config.Parse("pvectl.yaml", []byte(minimal+tc.section+"\n"))
		require.ErrorContains(t, err, tc.want, tc.section)
	}
}
