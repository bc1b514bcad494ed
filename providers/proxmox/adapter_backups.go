package proxmox

import (
	"context"
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
	if req.Remove != nil {
		p["remove"] = boolInt(*req.Remove)
	}
	ci := callInfo{method: http.MethodPost, path: "/nodes/" + url.PathEscape(req.VM.Node) + "/vzdump", node: req.VM.Node, vmid: req.VM.VMID}
	return a.task(ctx, ci, p)
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
	ci := callInfo{method: http.MethodGet, path: storagePath(node, storage), node: node, vmid: f.VMID}
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

// DeleteVolume implements Client. The volume id goes into the path with its
// '/' kept (PVE's route takes the rest of the path as the volume).
func (a *Adapter) DeleteVolume(ctx context.Context, node, storage, volid string) (TaskRef, error) {
	if node == "" || storage == "" || volid == "" {
		return TaskRef{}, errorf(ClassInvalid, "delete volume", "node, storage and volume are required")
	}
	segs := strings.Split(volid, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	ci := callInfo{method: http.MethodDelete, path: storagePath(node, storage) + "/" + strings.Join(segs, "/"), node: node}
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
	ci := callInfo{method: http.MethodPost, path: "/nodes/" + url.PathEscape(req.VM.Node) + "/qemu", node: req.VM.Node, vmid: req.VM.VMID}
	return a.task(ctx, ci, p)
}
