//go:build linux

package dnstest

import "syscall"

// sysProcAttr kills named if the test process dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
