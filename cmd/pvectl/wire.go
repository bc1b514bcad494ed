package main

import (
	"context"

	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/states"
)

// pipelines returns the pipeline tables the step runner uses.
func pipelines() states.Registry { return states.Pipelines() }

// testTasks are added to the scheduled tasks by the test binary only
// (test_sleep, which races real processes for a task lock); nil in pvectl.
var testTasks []engine.Task

// scheduledTasks is the task list the binary runs, in tick order.
func scheduledTasks() []engine.Task { return append(engine.StandardTasks(), testTasks...) }

// newEnv builds the step environment on first use: the PVE client and the
// DNS updater from the config.
func newEnv(_ context.Context, e *engine.Engine) (*states.Env, error) {
	c := e.Config
	opts := proxmox.Options{URL: c.Proxmox.URL, TokenID: c.Proxmox.TokenID,
		TokenSecret: c.Proxmox.TokenSecret.Reveal(), CAFile: c.Proxmox.CAFile,
		InsecureSkipVerify: c.Proxmox.InsecureSkipVerify, Timeout: c.Proxmox.Timeout.D(),
		UserAgent: "pvectl/" + version, MaxRequestsPerNode: c.Proxmox.MaxRequestsPerNode}
	if e.Metrics != nil {
		opts.Observe = e.Metrics.ObservePVE // PVE request latency, for the metrics file
	}
	pve, err := proxmox.New(opts)
	if err != nil {
		return nil, err
	}
	env := &states.Env{Store: e.Store, Config: c, PVE: pve, Now: e.Clock.Now, Zones: engine.DNSZones(c)}
	if u := engine.NewDNSUpdater(c); u != nil {
		env.DNS = u
	}
	return env, nil
}
