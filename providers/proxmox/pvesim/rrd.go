package pvesim

import "time"

// Traffic in rrddata. A VM's netin/netout are a rate profile: the base rates
// (bytes/s) set by SetNetRate (flat) or SetTrafficProfile (varying by UTC
// hour of day, deterministically, averaging the base over a day), counted
// only while the VM runs (since its last start) and never before it existed.
// The data belongs to the VM, not the node: after a migration the new node
// serves the whole history, as PVE's per-VM RRD files move with the VM.

// SetTrafficProfile sets a VM's base rates (bytes/s) and makes them vary by
// hour of day: the rate in hour h (UTC) is base × TrafficFactor(h).
func (s *Sim) SetTrafficProfile(vmid int, in, out float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.vms[vmid]; m != nil {
		m.netIn, m.netOut, m.profiled = in, out, true
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
	if !m.running {
		return 0, 0
	}
	from = max(from, m.startedAt.Unix(), m.created.Unix())
	for t := from; t < to; {
		h := t - t%3600
		end := min(to, h+3600)
		f := 1.0
		if m.profiled {
			f = TrafficFactor(int((h / 3600) % 24))
		}
		in += m.netIn * f * float64(end-t)
		out += m.netOut * f * float64(end-t)
		t = end
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
