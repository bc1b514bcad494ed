package proxmox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Backups (vzdump), storage content and restore.

// Backup implements Client.
func (a *Adapter) Backup(ctx context.Context, req BackupRequest) (TaskRef, error) {
	if err := checkVM("backup", req.VM); err != nil {
		return TaskRef{}, err
	}
	p := map[string]any{"vmid": strconv.Itoa(req.VM.VMID)}
	for k, v := range map[string]string{"storage": req.Storage, "mode": req.Mode, "compress": req.Compress,
		"notes-template": req.NotesTemplate} {
		if v != "" {
			p[k] = v
		}
	}
	if req.Protected {
		p["protected"] = 1
	}
	// remove=0 unless asked: see BackupRequest.Remove
	p["remove"] = boolInt(req.Remove != nil && *req.Remove)
	ci := callInfo{method: http.MethodPost, path: "/nodes/" + url.PathEscape(req.VM.Node) + "/vzdump", tmpl: "/nodes/{node}/vzdump", node: req.VM.Node, vmid: req.VM.VMID}
	var data *string
	if err := a.call(ctx, ci, p, &data); err != nil {
		return TaskRef{}, err
	}
	if data != nil && *data == "OK" {
		// API2/VZDump.pm: "silent exit if specified VMs run on other nodes"
		return TaskRef{}, &Error{Class: ClassPrecondition, Op: "backup", Node: req.VM.Node, VMID: req.VM.VMID,
			Message: fmt.Sprintf("VM %d is not on node %s: PVE started no backup", req.VM.VMID, req.VM.Node)}
	}
	if data == nil || *data == "" {
		return TaskRef{}, nil
	}
	ref, _, _, err := ParseUPID(*data)
	if err != nil {
		return TaskRef{}, &Error{Class: ClassUnknown, Op: ci.method + " " + ci.path, Node: ci.node, VMID: ci.vmid,
			Message: fmt.Sprintf("PVE returned %q instead of a task UPID", *data)}
	}
	return ref, nil
}

func storagePath(node, storage string) string {
	return "/nodes/" + url.PathEscape(node) + "/storage/" + url.PathEscape(storage) + "/content"
}

// StorageContent implements Client.
func (a *Adapter) StorageContent(ctx context.Context, node, storage string, f ContentFilter) ([]Volume, error) {
	if node == "" || storage == "" {
		return nil, errorf(ClassInvalid, "storage content", "node and storage are required")
	}
	p := map[string]any{}
	if f.Content != "" {
		p["content"] = f.Content
	}
	if f.VMID != 0 {
		p["vmid"] = f.VMID
	}
	var raw []struct {
		VolID     string   `json:"volid"`
		Content   string   `json:"content"`
		Format    string   `json:"format"`
		Subtype   string   `json:"subtype"`
		VMID      flexNum  `json:"vmid"`
		Size      flexNum  `json:"size"`
		Used      flexNum  `json:"used"`
		CTime     flexNum  `json:"ctime"`
		Notes     string   `json:"notes"`
		Protected flexBool `json:"protected"`
	}
	ci := callInfo{method: http.MethodGet, path: storagePath(node, storage), tmpl: "/nodes/{node}/storage/{storage}/content", node: node, vmid: f.VMID}
	if err := a.call(ctx, ci, p, &raw); err != nil {
		return nil, err
	}
	out := make([]Volume, 0, len(raw))
	for _, v := range raw {
		out = append(out, Volume{VolID: v.VolID, Content: v.Content, Format: v.Format, Subtype: v.Subtype,
			VMID: int(v.VMID), Size: int64(v.Size), Used: int64(v.Used), CTime: unixTime(v.CTime),
			Notes: v.Notes, Protected: bool(v.Protected)})
	}
	return out, nil
}

// volumeTmpl is volumePath's template: a volume ID's slashes are part of
// {volume}.
const volumeTmpl = "/nodes/{node}/storage/{storage}/content/{volume}"

func volumePath(node, storage, volid string) string {
	segs := strings.Split(volid, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return storagePath(node, storage) + "/" + strings.Join(segs, "/")
}

// UpdateVolume implements Client.
func (a *Adapter) UpdateVolume(ctx context.Context, node, storage, volid string, u VolumeUpdate) error {
	if node == "" || storage == "" || volid == "" {
		return errorf(ClassInvalid, "update volume", "node, storage and volume are required")
	}
	p := map[string]any{}
	if u.Notes != nil {
		p["notes"] = *u.Notes
	}
	if u.Protected != nil {
		p["protected"] = boolInt(*u.Protected)
	}
	if len(p) == 0 {
		return nil
	}
	ci := callInfo{method: http.MethodPut, path: volumePath(node, storage, volid), tmpl: volumeTmpl, node: node}
	return a.call(ctx, ci, p, nil)
}

// DeleteVolume implements Client. The volume id goes into the path with its
// '/' kept (PVE's route takes the rest of the path as the volume).
func (a *Adapter) DeleteVolume(ctx context.Context, node, storage, volid string) (TaskRef, error) {
	if node == "" || storage == "" || volid == "" {
		return TaskRef{}, errorf(ClassInvalid, "delete volume", "node, storage and volume are required")
	}
	ci := callInfo{method: http.MethodDelete, path: volumePath(node, storage, volid), tmpl: volumeTmpl, node: node}
	return a.task(ctx, ci, nil)
}

// Restore implements Client.
func (a *Adapter) Restore(ctx context.Context, req RestoreRequest) (TaskRef, error) {
	if err := checkVM("restore", req.VM); err != nil {
		return TaskRef{}, err
	}
	if req.Archive == "" {
		return TaskRef{}, errorf(ClassInvalid, "restore", "archive is required")
	}
	p := map[string]any{"vmid": req.VM.VMID, "archive": req.Archive}
	if req.Storage != "" {
		p["storage"] = req.Storage
	}
	if req.Pool != "" {
		p["pool"] = req.Pool
	}
	if req.Force {
		p["force"] = 1
	}
	if req.Unique {
		p["unique"] = 1
	}
	ci := callInfo{method: http.MethodPost, path: "/nodes/" + url.PathEscape(req.VM.Node) + "/qemu", tmpl: "/nodes/{node}/qemu", node: req.VM.Node, vmid: req.VM.VMID}
	return a.task(ctx, ci, p)
}
