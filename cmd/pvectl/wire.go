package main

import (
	"context"

	"github.com/pvectl/pvectl/config"
	"github.com/pvectl/pvectl/engine"
	"github.com/pvectl/pvectl/providers/dns"
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
	pve, err := proxmox.New(proxmox.Options{URL: c.Proxmox.URL, TokenID: c.Proxmox.TokenID,
		TokenSecret: c.Proxmox.TokenSecret.Reveal(), CAFile: c.Proxmox.CAFile,
		InsecureSkipVerify: c.Proxmox.InsecureSkipVerify, Timeout: c.Proxmox.Timeout.D(),
		UserAgent: "pvectl/" + version})
	if err != nil {
		return nil, err
	}
	env := &states.Env{Store: e.Store, Config: c, PVE: pve, Now: e.Clock.Now, Zones: dnsZones(c)}
	if len(env.Zones) > 0 {
		u := dns.NewUpdater(env.Zones)
		u.Timeout = c.DNS.Timeout.D()
		env.DNS = u
	}
	return env, nil
}

func dnsZones(c *config.Config) []dns.Zone {
	var out []dns.Zone
	for _, z := range c.DNS.Zones {
		out = append(out, dns.Zone{Name: z.Name, Server: z.Server, KeyName: z.KeyName, Algorithm: z.Algorithm, Secret: z.Secret.Reveal()})
	}
	return out
}
