package proxmox

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// VM status and config reads, config and cloud-init changes.

// VMStatus implements Client.
func (a *Adapter) VMStatus(ctx context.Context, vm VMRef) (VMStatus, error) {
	if err := checkVM("vm status", vm); err != nil {
		return VMStatus{}, err
	}
	var raw struct {
		Name      string   `json:"name"`
		Status    string   `json:"status"`
		QMPStatus string   `json:"qmpstatus"`
		Lock      string   `json:"lock"`
		Tags      string   `json:"tags"`
		Template  flexBool `json:"template"` // present only as 1 (go-proxmox reads any value as true)
		CPUs      flexNum  `json:"cpus"`
		MaxMem    flexNum  `json:"maxmem"`
		Mem       flexNum  `json:"mem"`
		MaxDisk   flexNum  `json:"maxdisk"`
		Uptime    flexNum  `json:"uptime"`
		HA        struct {
			Managed flexBool `json:"managed"`
		} `json:"ha"`
	}
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/status/current"), nil, &raw); err != nil {
		return VMStatus{}, err
	}
	return VMStatus{
		VM: vm, Name: raw.Name, Status: raw.Status, QMPStatus: raw.QMPStatus, Lock: raw.Lock,
		Tags: splitTags(raw.Tags), Template: bool(raw.Template), CPUs: int(raw.CPUs),
		MaxMem: int64(raw.MaxMem), Mem: int64(raw.Mem), MaxDisk: int64(raw.MaxDisk),
		Uptime: time.Duration(raw.Uptime) * time.Second, HAManaged: bool(raw.HA.Managed),
	}, nil
}

// VMConfig implements Client.
func (a *Adapter) VMConfig(ctx context.Context, vm VMRef) (VMConfig, error) {
	if err := checkVM("vm config", vm); err != nil {
		return VMConfig{}, err
	}
	var raw map[string]flexStr
	if err := a.call(ctx, vmCall(http.MethodGet, vm, "/config"), nil, &raw); err != nil {
		return VMConfig{}, err
	}
	cfg := VMConfig{VM: vm, Values: make(map[string]string, len(raw))}
	for k, v := range raw {
		if k == "digest" {
			cfg.Digest = string(v)
			continue
		}
		cfg.Values[k] = string(v)
	}
	return cfg, nil
}

// qemuConfigTypes are the non-string keys of the qemu config endpoints in
// the PVE 8.4/9.x schema; their values are sent as JSON numbers.
var qemuConfigTypes = map[string]string{
	"acpi": "boolean", "autostart": "boolean", "balloon": "integer", "ciupgrade": "boolean",
	"cores": "integer", "cpulimit": "number", "cpuunits": "integer", "freeze": "boolean",
	"keephugepages": "boolean", "kvm": "boolean", "localtime": "boolean", "migrate_downtime": "number",
	"migrate_speed": "integer", "numa": "boolean", "onboot": "boolean", "protection": "boolean",
	"reboot": "boolean", "shares": "integer", "smp": "integer", "sockets": "integer",
	"tablet": "boolean", "tdf": "boolean", "template": "boolean", "vcpus": "integer",
}

func configParams(ch ConfigChange) (map[string]any, error) {
	p := make(map[string]any, len(ch.Set)+3)
	for k, v := range ch.Set {
		switch qemuConfigTypes[k] {
		case "integer", "boolean":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, errorf(ClassInvalid, "config", "%s: %q is not an integer", k, v)
			}
			p[k] = n
		case "number":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, errorf(ClassInvalid, "config", "%s: %q is not a number", k, v)
			}
			p[k] = json.Number(strconv.FormatFloat(f, 'f', -1, 64))
		default:
			p[k] = v
		}
	}
	if len(ch.Delete) > 0 {
		p["delete"] = strings.Join(ch.Delete, ",")
	}
	if ch.Digest != "" {
		p["digest"] = ch.Digest
	}
	if ch.SkipLock {
		p["skiplock"] = 1
	}
	return p, nil
}

// SetConfig implements Client.
func (a *Adapter) SetConfig(ctx context.Context, vm VMRef, change ConfigChange) (TaskRef, error) {
	if err := checkVM("set config", vm); err != nil {
		return TaskRef{}, err
	}
	p, err := configParams(change)
	if err != nil {
		return TaskRef{}, err
	}
	return a.task(ctx, vmCall(http.MethodPost, vm, "/config"), p)
}

// SetConfigSync implements Client.
func (a *Adapter) SetConfigSync(ctx context.Context, vm VMRef, change ConfigChange) error {
	if err := checkVM("set config", vm); err != nil {
		return err
	}
	p, err := configParams(change)
	if err != nil {
		return err
	}
	return a.call(ctx, vmCall(http.MethodPut, vm, "/config"), p, nil)
}

// SetCloudInit implements Client.
func (a *Adapter) SetCloudInit(ctx context.Context, vm VMRef, ci CloudInit) error {
	v := ci.Values()
	if len(v) == 0 {
		return nil
	}
	return a.SetConfigSync(ctx, vm, ConfigChange{Set: v})
}
