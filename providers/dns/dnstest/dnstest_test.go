package dnstest

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/stretchr/testify/require"
)

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	s := Start(t)
	pid := s.PID()
	require.NotZero(t, pid)
	require.True(t, alive(pid))
	require.True(t, s.answersMarker("udp"))
	require.True(t, s.answersMarker("tcp"))
	s.AddRR(t, Forward, "kept.example.test. 300 IN A 192.0.2.1")

	s.Stop()
	require.Zero(t, s.PID())
	require.False(t, alive(pid), "named (pid %d) still running after Stop", pid)
	require.False(t, s.answersMarker("udp"))
	s.Stop() // stopping twice is fine

	s.Restart()
	require.NotZero(t, s.PID())
	require.NotEqual(t, pid, s.PID())
	require.Len(t, s.Lookup(t, "kept.example.test", mdns.TypeA), 1, "records survive a restart")
	require.Contains(t, s.Log(), "=== dnstest: starting")
}

func TestTwoServersDoNotShareAPort(t *testing.T) {
	t.Parallel()
	a, b := Start(t), Start(t)
	require.NotEqual(t, a.Addr, b.Addr)
	require.NotEqual(t, a.Secret, b.Secret)
	require.True(t, a.answersMarker("udp"))
	require.True(t, b.answersMarker("udp"))
}

// fatalTB records Fatalf and stops the goroutine, like testing.T does.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fatalTB) Helper() {}

func TestMissingNamedFailsTheTest(t *testing.T) {
	t.Setenv(EnvNamed, "/nonexistent/named")
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f)
	}()
	<-done
	require.Contains(t, f.msg, "BIND 9 `named` is not installed")
	require.Contains(t, f.msg, "scripts/install-test-deps.sh")
}
