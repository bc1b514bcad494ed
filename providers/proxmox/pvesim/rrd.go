package pvesim

import (
	"strconv"
	"strings"
	"time"
)

// Traffic in rrddata. A VM's netin/netout are a rate profile: the base rates
// (bytes/s) set by SetNetRate (flat), SetTrafficProfile or the cluster's
// traffic section (varying by UTC hour of day, deterministically, averaging
// the base over a day). They are counted only while the VM ran (its run
// history: a stop, a restart or a backup in stop mode leave gaps, and the
// history before a restart stays, as PVE's RRD files keep it) and never
// before it existed, and capped by the rate option of its net0 while it
// had one (PVE limits the tap device to rate MB/s, 1 MB = 2^20 bytes). The
// data belongs to the VM, not the node: after a migration the new node
// serves the whole history, as PVE's per-VM RRD files move with the VM.

// runSpan is a stretch [from, to) (Unix seconds) the VM ran; to 0 = runs.
type runSpan struct{ from, to int64 }

// rateCap is the NIC rate limit (bytes/s, 0 = none) from at on.
type rateCap struct {
	at  int64
	bps float64
}

// setRunning starts (on) or stops the VM at `at`, keeping its run history;
// a start also sets its uptime's start.
func (m *vm) setRunning(on bool, at time.Time) {
	t := at.Unix()
	switch {
	case on && !m.running:
		m.runs = append(m.runs, runSpan{from: t})
	case !on && m.running && len(m.runs) > 0 && m.runs[len(m.runs)-1].to == 0:
		m.runs[len(m.runs)-1].to = max(t, m.runs[len(m.runs)-1].from)
	}
	if on {
		m.startedAt = at
	}
	m.running = on
}

// noteNICRate records net0's rate option (MB/s) from at on, when it
// changed.
func (m *vm) noteNICRate(at time.Time) {
	bps := 0.0
	for _, part := range strings.Split(m.conf["net0"], ",") {
		if v, ok := strings.CutPrefix(part, "rate="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
				bps = f * (1 << 20)
			}
		}
	}
	last := 0.0
	if n := len(m.caps); n > 0 {
		last = m.caps[n-1].bps
	}
	if bps != last {
		m.caps = append(m.caps, rateCap{at: at.Unix(), bps: bps})
	}
}

// capAt is the rate limit in force at t and when the next change comes
// (0: none).
func (m *vm) capAt(t int64) (bps float64, next int64) {
	for _, c := range m.caps {
		if c.at > t {
			return bps, c.at
		}
		bps = c.bps
	}
	return bps, 0
}

// SetTrafficProfile sets a VM's base rates (bytes/s) and makes them vary by
// hour of day: the rate in hour h (UTC) is base × TrafficFactor(h).
func (s *Sim) SetTrafficProfile(vmid int, in, out float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.vms[vmid]; m != nil {
		m.netIn, m.netOut, m.profiled = in, out, true
	}
}

// TrafficSpec is the traffic of VMs in rrddata (Cluster.Traffic, or one
// VM's in VMSpec.Traffic): base rates in bytes/s; daily makes them vary by
// UTC hour of day (TrafficFactor) around the base.
type TrafficSpec struct {
	In    float64 `yaml:"in" json:"in"`
	Out   float64 `yaml:"out" json:"out"`
	Daily bool    `yaml:"daily" json:"daily"`
}

// applyTraffic gives a new VM the cluster's traffic profile (nil: none).
func (s *Sim) applyTraffic(m *vm, t *TrafficSpec) {
	if t == nil {
		t = s.cluster.Traffic
	}
	if t != nil {
		m.netIn, m.netOut, m.profiled = t.In, t.Out, t.Daily
	}
}

// TrafficFactor is the profile's multiplier for UTC hour of day h (0..23):
// (1 + 7h mod 24) / 12.5, from 0.08 to 1.92, averaging exactly 1 over a day.
func TrafficFactor(h int) float64 {
	return float64(1+(h*7)%24) / 12.5
}

// trafficBytes integrates m's traffic over [from, to) (Unix seconds).
// Callers hold s.mu.
func (m *vm) trafficBytes(from, to int64) (in, out float64) {
	from = max(from, m.created.Unix())
	for _, r := range m.runs {
		a, b := max(from, r.from), to
		if r.to != 0 {
			b = min(to, r.to)
		}
		for t := a; t < b; {
			h := t - t%3600
			end := min(b, h+3600)
			limit, next := m.capAt(t)
			if next != 0 && next < end {
				end = next
			}
			f := 1.0
			if m.profiled {
				f = TrafficFactor(int((h / 3600) % 24))
			}
			rin, rout := m.netIn*f, m.netOut*f
			if limit > 0 {
				rin, rout = min(rin, limit), min(rout, limit)
			}
			in += rin * float64(end-t)
			out += rout * float64(end-t)
			t = end
		}
	}
	return in, out
}

// rrdNet is the AVERAGE netin/netout of the row [ts, ts+step); the current
// row (still filling) averages over what has elapsed of it (its first
// second when none has).
func (m *vm) rrdNet(ts, step, now int64) (in, out float64) {
	end := min(ts+step, now)
	if end <= ts { // the row just began: the current rate
		end = ts + 1
	}
	in, out = m.trafficBytes(ts, end)
	return in / float64(end-ts), out / float64(end-ts)
}

// TrafficGenerated is the traffic (bytes) the simulator generated for a VM
// over [from, to): what a perfect collector would have counted.
func (s *Sim) TrafficGenerated(vmid int, from, to time.Time) (in, out float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.vms[vmid]; m != nil {
		return m.trafficBytes(from.Unix(), to.Unix())
	}
	return 0, 0
}
