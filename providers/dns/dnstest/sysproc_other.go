//go:build !linux

package dnstest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
