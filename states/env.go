package states

import (
	"context"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/dns"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// DNSUpdater is what the steps need from the DNS provider.
type DNSUpdater interface {
	Publish(ctx context.Context, rec dns.Record) error
	Delete(ctx context.Context, rec dns.Record) error
}

// Env is what a step function works with. The runner gives each VM its own
// copy with Emit bound to that VM's live output and run log.
type Env struct {
	Store  *store.Store
	Config *config.Config
	PVE    proxmox.Client
	DNS    DNSUpdater
	Zones  []dns.Zone
	Now    func() time.Time
	// HeavySlot takes one of the node's slots for a heavy task (clone,
	// migrate); false means the node already has HeavyLimit in flight and
	// the step should wait. A step takes it before it looks (the look
	// guards only the submit), so workers that find no slot wait without
	// asking PVE, and gives it back (HeavyRelease) when the look shows
	// there is nothing to submit. nil = no limit.
	HeavySlot  func(node string) bool
	HeavyLimit int
	// HeavyRelease gives back a slot HeavySlot took for a task the step
	// did not submit. nil = no limit.
	HeavyRelease func(node string)
	// Strays is the pass's safety net: the PVE VMs carrying pvectl's marker
	// that no record knows, looked for once per process_vms pass by the
	// first allocation; their addresses are never handed out. nil = not
	// looked for (tests that build an Env by hand).
	Strays *Strays
	// Fleet is the pass's one view of /cluster/resources, shared by the
	// steps where a view from earlier in the pass is safe (see Fleet). nil
	// = every look reads it fresh.
	Fleet *Fleet
	// Claims is the pass's view of the VMIDs and addresses taken, through
	// which its workers pick one at a time (see Claims). nil = every pick
	// reads them fresh.
	Claims *Claims
	// Emit writes a sub-line (a DNS record, a heartbeat, an event) for the
	// current step, live and into the VM's run log.
	Emit func(detail string)

	// Resolved by Step.Call for the step about to run, as it declared them:
	// the VM's product (NeedProduct), its current PVE config (NeedConfig),
	// and whether the step's own pending PVE task ended OK (Task).
	Product  config.Product
	VMConfig proxmox.VMConfig
	TaskDone bool

	// looked is what Step.Call read to locate the VM (its status or its
	// config), for the step's own first read.
	looked *looked
}
