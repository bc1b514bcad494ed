// The traffic throttle (traffic_action: throttle): over its traffic limit,
// a VM's NIC carries the product's traffic_throttle_mbps as its rate until
// the billing period ends. collect_stats decides and records it
// (store.VM.ThrottleMBps/ThrottleUntil) and calls SyncNICRate; the
// change-package's network step applies the same rate (nicNetwork), so a
// change-package or restore during the period keeps the throttle.

package states

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/store"
)

// nicNetwork is the NIC the VM should have at now: the product's, with
// the throttle's rate while it lasts (never faster than the product's).
func nicNetwork(p config.Product, vm store.VM, now time.Time) config.Network {
	n := p.Network
	if r := vm.Throttled(now); r > 0 && (n.RateMBps == 0 || r < n.RateMBps) {
		n.RateMBps = r
	}
	return n
}

// NICRate is the rate (MB/s, 0 = unlimited) the VM's net0 should carry at
// now under product p.
func NICRate(p config.Product, vm store.VM, now time.Time) int {
	return nicNetwork(p, vm, now).RateMBps
}

// withRate is a netN value with its rate option set to rate (0: removed);
// every other option is kept as it is.
func withRate(net string, rate int) string {
	var parts []string
	for _, part := range strings.Split(net, ",") {
		if k, _, _ := strings.Cut(part, "="); k != "rate" && part != "" {
			parts = append(parts, part)
		}
	}
	if rate > 0 {
		parts = append(parts, "rate="+strconv.Itoa(rate))
	}
	return strings.Join(parts, ",")
}

// RateOf is the rate option of a netN value (0: none, unlimited).
func RateOf(net string) float64 {
	for _, part := range strings.Split(net, ",") {
		if v, ok := strings.CutPrefix(part, "rate="); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// SyncNICRate looks at the VM's net0 and, when its rate is not rate (MB/s,
// 0 = unlimited), sets it (a synchronous config update with the digest it
// read; PVE applies a rate change to a running VM at once). Only the rate
// option changes: bridge, VLAN, model and MAC stay. It reports whether it
// changed net0; a net0 already at rate changes nothing.
func SyncNICRate(ctx context.Context, pve proxmox.Client, vm store.VM, rate int) (bool, error) {
	cfg, err := pve.VMConfig(ctx, ref(vm))
	if err != nil {
		return false, err
	}
	cur, ok := cfg.Get("net0")
	if !ok || cur == "" {
		return false, errors.New("the VM has no net0")
	}
	if RateOf(cur) == float64(rate) {
		return false, nil
	}
	next := withRate(cur, rate)
	if err := pve.SetConfigSync(ctx, ref(vm), proxmox.ConfigChange{Set: map[string]string{"net0": next}, Digest: cfg.Digest}); err != nil {
		return false, err
	}
	return true, nil
}
