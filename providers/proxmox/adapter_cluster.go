package proxmox

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Cluster resources, node status and storage status.

type resourceJSON struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	VMID     flexNum  `json:"vmid"`
	Name     string   `json:"name"`
	Node     string   `json:"node"`
	Status   string   `json:"status"`
	Lock     string   `json:"lock"`
	Tags     string   `json:"tags"`
	Pool     string   `json:"pool"`
	Template flexBool `json:"template"`
	HAState  string   `json:"hastate"`
	Storage  string   `json:"storage"`
	Content  string   `json:"content"`
	Shared   flexBool `json:"shared"`
	CPU      flexNum  `json:"cpu"`
	MaxCPU   flexNum  `json:"maxcpu"`
	Mem      flexNum  `json:"mem"`
	MaxMem   flexNum  `json:"maxmem"`
	Disk     flexNum  `json:"disk"`
	MaxDisk  flexNum  `json:"maxdisk"`
	Uptime   flexNum  `json:"uptime"`
}

// ClusterResources implements Client.
func (a *Adapter) ClusterResources(ctx context.Context, kind ResourceType) ([]Resource, error) {
	var params map[string]any
	if kind != ResourceAll {
		params = map[string]any{"type": string(kind)}
	}
	var raw []resourceJSON
	if err := a.call(ctx, callInfo{method: http.MethodGet, path: "/cluster/resources", tmpl: "/cluster/resources"}, params, &raw); err != nil {
		return nil, err
	}
	out := make([]Resource, 0, len(raw))
	for _, r := range raw {
		out = append(out, Resource{
			ID: r.ID, Type: r.Type, VMID: int(r.VMID), Name: r.Name, Node: r.Node, Status: r.Status,
			Lock: r.Lock, Tags: splitTags(r.Tags), Pool: r.Pool, Template: bool(r.Template), HAState: r.HAState,
			Storage: r.Storage, Content: splitList(r.Content), Shared: bool(r.Shared),
			CPU: float64(r.CPU), MaxCPU: float64(r.MaxCPU), Mem: int64(r.Mem), MaxMem: int64(r.MaxMem),
			Disk: int64(r.Disk), MaxDisk: int64(r.MaxDisk), Uptime: time.Duration(r.Uptime) * time.Second,
		})
	}
	return out, nil
}

// NodeBridges implements Client.
func (a *Adapter) NodeBridges(ctx context.Context, node string) ([]string, error) {
	var raw []struct {
		Iface string `json:"iface"`
	}
	if err := a.call(ctx, callInfo{method: http.MethodGet, path: "/nodes/" + node + "/network", tmpl: "/nodes/{node}/network", node: node},
		map[string]any{"type": "any_bridge"}, &raw); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		out = append(out, r.Iface)
	}
	return out, nil
}

// Version implements Client.
func (a *Adapter) Version(ctx context.Context) (string, error) {
	var raw struct {
		Version string `json:"version"`
	}
	if err := a.call(ctx, callInfo{method: http.MethodGet, path: "/version", tmpl: "/version"}, nil, &raw); err != nil {
		return "", err
	}
	return raw.Version, nil
}

// NodeStatus implements Client.
func (a *Adapter) NodeStatus(ctx context.Context, node string) (NodeStatus, error) {
	var raw struct {
		CPU    flexNum `json:"cpu"`
		Uptime flexNum `json:"uptime"`
		Memory struct {
			Total flexNum `json:"total"`
			Used  flexNum `json:"used"`
			Free  flexNum `json:"free"`
		} `json:"memory"`
		CPUInfo struct {
			CPUs flexNum `json:"cpus"`
		} `json:"cpuinfo"`
		PVEVersion string `json:"pveversion"`
	}
	ci := callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(node) + "/status", tmpl: "/nodes/{node}/status", node: node}
	if node == "" {
		return NodeStatus{}, errorf(ClassInvalid, "node status", "node is required")
	}
	if err := a.call(ctx, ci, nil, &raw); err != nil {
		return NodeStatus{}, err
	}
	free := int64(raw.Memory.Free)
	if free == 0 && raw.Memory.Total > 0 {
		free = int64(raw.Memory.Total - raw.Memory.Used)
	}
	return NodeStatus{
		Node: node, MemoryTotal: int64(raw.Memory.Total), MemoryUsed: int64(raw.Memory.Used), MemoryFree: free,
		CPU: float64(raw.CPU), CPUs: int(raw.CPUInfo.CPUs), Uptime: time.Duration(raw.Uptime) * time.Second,
		PVEVersion: raw.PVEVersion,
	}, nil
}

// StorageStatus implements Client.
func (a *Adapter) StorageStatus(ctx context.Context, node, storage string) (StorageStatus, error) {
	var raw struct {
		Type    string   `json:"type"`
		Content string   `json:"content"`
		Total   flexNum  `json:"total"`
		Used    flexNum  `json:"used"`
		Avail   flexNum  `json:"avail"`
		Enabled flexBool `json:"enabled"`
		Active  flexBool `json:"active"`
		Shared  flexBool `json:"shared"`
	}
	if node == "" || storage == "" {
		return StorageStatus{}, errorf(ClassInvalid, "storage status", "node and storage are required")
	}
	ci := callInfo{method: http.MethodGet, path: "/nodes/" + url.PathEscape(node) + "/storage/" + url.PathEscape(storage) + "/status", tmpl: "/nodes/{node}/storage/{storage}/status", node: node}
	if err := a.call(ctx, ci, nil, &raw); err != nil {
		return StorageStatus{}, err
	}
	return StorageStatus{
		Node: node, Storage: storage, Type: raw.Type, Content: splitList(raw.Content),
		Total: int64(raw.Total), Used: int64(raw.Used), Avail: int64(raw.Avail),
		Enabled: bool(raw.Enabled), Active: bool(raw.Active), Shared: bool(raw.Shared),
	}, nil
}
