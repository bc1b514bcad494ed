package engine

import (
	"context"

	"github.com/pvectl/pvectl/store"
)

// Read-only queries the CLI renders (vm list, vm show, log).

// ListVMs lists the VM records, ordered by creation; status "" = all.
func (e *Engine) ListVMs(ctx context.Context, status string) ([]VM, error) {
	return e.Store.VMList(ctx, store.VMFilter{Status: status})
}

// ListVMsFiltered lists the VM records matching f (status, PVE power state
// as last seen, node, product, held), ordered by creation.
func (e *Engine) ListVMsFiltered(ctx context.Context, f store.VMFilter) ([]VM, error) {
	return e.Store.VMList(ctx, f)
}

// IPs are a VM's allocated addresses, IPv4 first.
func (e *Engine) IPs(ctx context.Context, vm VM) ([]IP, error) { return e.Store.IPsForVM(ctx, vm.ID) }

// DNSRecords are the records pvectl published (or failed to publish) for a VM.
func (e *Engine) DNSRecords(ctx context.Context, vm VM) ([]DNSRecord, error) {
	return e.Store.DNSRecords(ctx, vm.ID)
}

// Log returns a VM's newest runs first, step runs and requests
// interleaved in the order they were written.
func (e *Engine) Log(ctx context.Context, vm VM, runs int) ([]Run, error) {
	return e.Store.RunsForVM(ctx, vm.ID, runs)
}

// IsRequest reports whether a run of a VM's log records a request (an audit
// event) rather than steps.
func IsRequest(r Run) bool { return r.Task == RequestTask }
