package dns_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/pvectl/pvectl/providers/dns"
)

// A signed update whose UDP reply comes back truncated is sent again over TCP
// (updater.go exchange). miekg/dns' TsigGenerateWithProvider strips the TSIG
// RR from m.Extra when it packs the UDP message and never puts it back, so
// the TCP retry goes out UNSIGNED: a real primary answers REFUSED (or the
// unsigned reply fails "reply to a signed message is not signed").
//
// The server here sets TC on every UDP reply and on TCP accepts only a
// correctly signed update.
func TestSignedUpdateTCPFallbackStaysSigned_regression(t *testing.T) {
	t.Parallel()
	const keyName = "pvectl-key."
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=" // base64
	var udpSigned, tcpSigned, tcpUnsigned atomic.Int32

	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		isTCP := w.LocalAddr().Network() == "tcp"
		if !isTCP {
			if r.IsTsig() != nil && w.TsigStatus() == nil {
				udpSigned.Add(1)
			}
			m.Truncated = true
		} else if r.IsTsig() == nil || w.TsigStatus() != nil {
			tcpUnsigned.Add(1)
			m.Rcode = mdns.RcodeRefused
			_ = w.WriteMsg(m)
			return
		} else {
			tcpSigned.Add(1)
		}
		if t := r.IsTsig(); t != nil {
			m.SetTsig(keyName, mdns.HmacSHA256, 300, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
	})

	pc, ln := listenUDPAndTCP(t)
	addr := pc.LocalAddr().String()
	secrets := map[string]string{keyName: secret}
	accept := func(mdns.Header) mdns.MsgAcceptAction { return mdns.MsgAccept }
	udp := &mdns.Server{PacketConn: pc, Handler: handler, TsigSecret: secrets, MsgAcceptFunc: accept}
	tcp := &mdns.Server{Listener: ln, Handler: handler, TsigSecret: secrets, MsgAcceptFunc: accept}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown() })

	u := dns.NewUpdater([]dns.Zone{{Name: "example.test", Server: addr, KeyName: "pvectl-key",
		Algorithm: "hmac-sha256", Secret: secret}})
	u.Timeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := u.Publish(ctx, dns.Record{Zone: "example.test", Name: "vm1.example.test", Type: "A", Value: "192.0.2.10"})
	require.EqualValues(t, 1, udpSigned.Load(), "the UDP attempt is signed correctly (key and secret match)")
	require.NoError(t, err, "the TCP retry of a signed update must still be signed")
	require.EqualValues(t, 0, tcpUnsigned.Load(), "TCP retry was sent without its TSIG")
	require.EqualValues(t, 1, tcpSigned.Load())
}

// listenUDPAndTCP listens on one loopback port for both UDP and TCP, as a
// DNS server does. The kernel picks a free UDP port; its TCP twin may be
// taken by another test's connection, so another port is tried then.
func listenUDPAndTCP(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		lastErr = err
		_ = pc.Close()
	}
	require.NoError(t, lastErr, "no loopback port free for both UDP and TCP")
	return nil, nil
}
