package proxmox

import (
	"context"
	"net/http"
	"time"
)

// Clone, resize, migrate, power (start, shutdown, reboot, stop) and delete: the
// calls that start a VM task.

// Clone implements Client.
func (a *Adapter) Clone(ctx context.Context, req CloneRequest) (TaskRef, error) {
	if err := checkVM("clone", req.Source); err != nil {
		return TaskRef{}, err
	}
	if req.NewID < 100 {
		return TaskRef{}, &Error{Class: ClassInvalid, Op: "clone", Node: req.Source.Node, VMID: req.Source.VMID, Message: "NewID >= 100 is required"}
	}
	p := map[string]any{"newid": req.NewID}
	for k, v := range map[string]string{"name": req.Name, "description": req.Description, "pool": req.Pool,
		"target": req.Target, "storage": req.Storage, "format": req.Format} {
		if v != "" {
			p[k] = v
		}
	}
	switch req.Mode {
	case CloneLinked:
		p["full"] = 0
	case CloneFull:
		p["full"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, req.Source, "/clone"), p)
}

// ResizeDisk implements Client.
func (a *Adapter) ResizeDisk(ctx context.Context, vm VMRef, disk, size string) (TaskRef, error) {
	if err := checkVM("resize", vm); err != nil {
		return TaskRef{}, err
	}
	return a.task(ctx, vmCall(http.MethodPut, vm, "/resize"), map[string]any{"disk": disk, "size": size})
}

// Migrate implements Client.
func (a *Adapter) Migrate(ctx context.Context, req MigrateRequest) (TaskRef, error) {
	if err := checkVM("migrate", req.VM); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{"target": req.Target}
	if req.TargetStorage != "" {
		p["targetstorage"] = req.TargetStorage
	}
	if req.BWLimitKiB > 0 {
		p["bwlimit"] = req.BWLimitKiB
	}
	if req.Online {
		p["online"] = 1
	}
	if req.WithLocalDisks {
		p["with-local-disks"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, req.VM, "/migrate"), p)
}

// power starts a power task: POST …/status/{action} (start, shutdown,
// reboot or stop; action is also the operation named in errors), with timeout in
// whole seconds when set and each flag that is on sent as 1.
func (a *Adapter) power(ctx context.Context, vm VMRef, action string, timeout time.Duration, flags map[string]bool) (TaskRef, error) {
	if err := checkVM(action, vm); err != nil {
		return TaskRef{}, err
	}
	p := flagParams(flags)
	if timeout > 0 {
		p["timeout"] = seconds(timeout)
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/status/"+action), p)
}

// flagParams holds the flags that are on, each as 1; the others are not
// sent (an empty map when none is on).
func flagParams(flags map[string]bool) map[string]any {
	p := map[string]any{}
	for k, on := range flags {
		if on {
			p[k] = 1
		}
	}
	return p
}

// Start implements Client.
func (a *Adapter) Start(ctx context.Context, vm VMRef, opts StartOptions) (TaskRef, error) {
	return a.power(ctx, vm, "start", opts.Timeout, map[string]bool{"skiplock": opts.SkipLock})
}

// Shutdown implements Client.
func (a *Adapter) Shutdown(ctx context.Context, vm VMRef, opts ShutdownOptions) (TaskRef, error) {
	return a.power(ctx, vm, "shutdown", opts.Timeout, map[string]bool{
		"forceStop": opts.ForceStop, "skiplock": opts.SkipLock,
	})
}

// Reboot implements Client.
func (a *Adapter) Reboot(ctx context.Context, vm VMRef, opts RebootOptions) (TaskRef, error) {
	return a.power(ctx, vm, "reboot", opts.Timeout, nil)
}

// Stop implements Client.
func (a *Adapter) Stop(ctx context.Context, vm VMRef, opts StopOptions) (TaskRef, error) {
	return a.power(ctx, vm, "stop", opts.Timeout, map[string]bool{
		"skiplock": opts.SkipLock, "overrule-shutdown": opts.OverruleShutdown,
	})
}

// Delete implements Client.
func (a *Adapter) Delete(ctx context.Context, vm VMRef, opts DeleteOptions) (TaskRef, error) {
	if err := checkVM("delete", vm); err != nil {
		return TaskRef{}, err
	}
	p := flagParams(map[string]bool{
		"purge": opts.Purge, "destroy-unreferenced-disks": opts.DestroyUnreferencedDisks, "skiplock": opts.SkipLock,
	})
	return a.task(ctx, vmCall(http.MethodDelete, vm, ""), p)
}
