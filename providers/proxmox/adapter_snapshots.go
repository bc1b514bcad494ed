package proxmox

import (
	"context"
	"net/http"
)

// Snapshots and RRD statistics.

// Snapshots implements Client.
func (a *Adapter) Snapshots(ctx context.Context, vm VMRef) ([]Snapshot, error) {
	if err := checkVM("snapshots", vm); err != nil {
		return nil, err
	}
	var raw []struct {
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Parent      string   `json:"parent"`
		SnapTime    flexNum  `json:"snaptime"`
		VMState     flexBool `json:"vmstate"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/snapshot"), nil, &raw); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(raw))
	for _, s := range raw {
		if s.Name == "current" { // PVE's "You are here!" pseudo entry; a real snapshot cannot use the name
			continue
		}
		out = append(out, Snapshot{Name: s.Name, Description: s.Description, Parent: s.Parent,
			SnapTime: unixTime(s.SnapTime), VMState: bool(s.VMState)})
	}
	return out, nil
}

// CreateSnapshot implements Client.
func (a *Adapter) CreateSnapshot(ctx context.Context, vm VMRef, req SnapshotRequest) (TaskRef, error) {
	if err := checkVM("create snapshot", vm); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{"snapname": req.Name}
	if req.Description != "" {
		p["description"] = req.Description
	}
	if req.VMState {
		p["vmstate"] = 1
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/snapshot"), p)
}

// DeleteSnapshot implements Client.
func (a *Adapter) DeleteSnapshot(ctx context.Context, vm VMRef, name string, force bool) (TaskRef, error) {
	if err := checkVM("delete snapshot", vm); err != nil {
		return TaskRef{}, err
	}
	var p map[string]any
	if force {
		p = map[string]any{"force": 1}
	}
	return a.task(ctx, vmCall(http.MethodDelete, vm, "/snapshot/{snapname}", name), p)
}

// RollbackSnapshot implements Client.
func (a *Adapter) RollbackSnapshot(ctx context.Context, vm VMRef, name string, start bool) (TaskRef, error) {
	if err := checkVM("rollback snapshot", vm); err != nil {
		return TaskRef{}, err
	}
	var p map[string]any
	if start {
		p = map[string]any{"start": 1}
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/snapshot/{snapname}/rollback", name), p)
}

// RRDData implements Client.
func (a *Adapter) RRDData(ctx context.Context, vm VMRef, tf Timeframe, cf ConsolidationFunction) ([]RRDPoint, error) {
	if err := checkVM("rrddata", vm); err != nil {
		return nil, err
	}
	if tf == "" {
		tf = TimeframeHour
	}
	p := map[string]any{"timeframe": string(tf)}
	if cf != "" {
		p["cf"] = string(cf)
	}
	var raw []struct {
		Time      flexNum `json:"time"`
		CPU       flexNum `json:"cpu"`
		MaxCPU    flexNum `json:"maxcpu"`
		Mem       flexNum `json:"mem"`
		MaxMem    flexNum `json:"maxmem"`
		Disk      flexNum `json:"disk"`
		MaxDisk   flexNum `json:"maxdisk"`
		NetIn     flexNum `json:"netin"`
		NetOut    flexNum `json:"netout"`
		DiskRead  flexNum `json:"diskread"`
		DiskWrite flexNum `json:"diskwrite"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/rrddata"), p, &raw); err != nil {
		return nil, err
	}
	out := make([]RRDPoint, 0, len(raw))
	for _, r := range raw {
		out = append(out, RRDPoint{Time: unixTime(r.Time), CPU: float64(r.CPU), MaxCPU: float64(r.MaxCPU),
			Mem: float64(r.Mem), MaxMem: float64(r.MaxMem), Disk: float64(r.Disk), MaxDisk: float64(r.MaxDisk),
			NetIn: float64(r.NetIn), NetOut: float64(r.NetOut), DiskRead: float64(r.DiskRead), DiskWrite: float64(r.DiskWrite)})
	}
	return out, nil
}
