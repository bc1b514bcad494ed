package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// The roles of the VMs in the crash test of vm migrate (issue 11), by index
// in the fleet modulo migRoles: how each is asked to move in the first
// round. In the second round every VM moves back, the auto ones to their
// node by name and the named ones with --node auto.
const (
	migOnlineAuto  = iota // running: --node auto --online
	migOnlineNode         // running: --node OTHER --online
	migOfflineAuto        // stopped first: --node auto
	migOfflineNode        // stopped first: --node OTHER
	migRoles
)

// migAsk is one vm migrate request of the phase.
type migAsk struct {
	node   string // as asked: a node name or "auto"
	online bool
	from   string // the VM's node when asked
}

// crashMigrate is the crash test of vm migrate (issue 11) on the ready VMs
// the earlier phases left: some are stopped (unkilled ticks) and migrated
// offline, the others migrated live with --online, some with --node auto
// and some with a node named, while ticks are killed at random instants;
// then, in a second round, every VM is migrated back the other way
// (auto ↔ named). After each round every VM must be ready on the node
// asked (auto: another node than the one it was on) within the round's
// tick budget, with PVE agreeing; the round's PVE tasks for each VM must
// be exactly one successful qmigrate from its old node and nothing else
// (no second migration, no start/stop/reboot: a running VM stays running,
// a stopped one stopped, also in unkilled ticks after the round); PVE must
// have accepted exactly one migrate request per VM (live with
// with-local-disks for a running VM, offline for a stopped one) and the
// target, once chosen, must never change. VMID, addresses, MAC, the
// anti-spoofing IP set and the firewall options are unchanged by the move,
// and every disk volume is on the new node. Kills must land while VMs are
// in migrate and in migrate_moved.
func crashMigrate(t *testing.T, dir string, sim *pvesimProc, rng *rand.Rand, nextNow func() string, crashKills int) {
	began := time.Now()
	var fleet []vmJSON
	for _, v := range listVMs(t, dir) {
		if v.Status == "ready" {
			fleet = append(fleet, v)
		}
	}
	require.GreaterOrEqual(t, len(fleet), migRoles, "VMs left for the migrate phase")
	st0 := sim.state(t)
	var nodes []string
	for _, n := range st0.Nodes {
		nodes = append(nodes, n.Name)
	}
	require.GreaterOrEqual(t, len(nodes), 2, "the migrate phase needs two nodes")
	otherNode := func(n string) string {
		for _, o := range nodes {
			if o != n {
				return o
			}
		}
		return ""
	}
	role := map[string]int{}
	vmid := map[string]int{}
	ips := map[string][]string{}
	for i, v := range fleet {
		role[v.ServiceID] = i % migRoles
		vmid[v.ServiceID] = *v.VMID
		ips[v.ServiceID] = slices.Sorted(slices.Values(v.IPs))
	}
	tick := func(what string) {
		t.Helper()
		p := startTick(t, dir, nextNow())
		<-p.done
		require.Equal(t, 0, p.code(), "%s: tick failed:\n%s%s", what, p.stdout.String(), p.stderr.String())
	}
	vmLog := func(svc string) string {
		lp := pvectlProc(t, dir, nil, "log", svc, "--runs", "50")
		lp.exitCode()
		return lp.stdout.String()
	}

	// The VMs to migrate offline are stopped first, by unkilled ticks (the
	// power phase covers stops under kills).
	for _, v := range fleet {
		if r := role[v.ServiceID]; r == migOfflineAuto || r == migOfflineNode {
			p := pvectlProc(t, dir, []string{nextNow()}, "vm", "stop", v.ServiceID)
			require.Equal(t, 0, p.exitCode(), "vm stop: %s%s", p.stdout.String(), p.stderr.String())
		}
	}
	for ticks := 0; ; ticks++ {
		stopped := true
		pve := map[int]pvesim.VMState{}
		for _, pv := range sim.state(t).VMs {
			pve[pv.VMID] = pv
		}
		for _, v := range listVMs(t, dir) {
			r, ok := role[v.ServiceID]
			if !ok {
				continue
			}
			want := "running"
			if r == migOfflineAuto || r == migOfflineNode {
				want = "stopped"
			}
			if v.Status != "ready" || v.Power == nil || v.Power.State != want || pve[vmid[v.ServiceID]].Status != want {
				stopped = false
			}
		}
		if stopped {
			break
		}
		require.Less(t, ticks, 60, "migrate phase: the VMs to migrate offline did not stop")
		tick("migrate phase: stop")
		time.Sleep(50 * time.Millisecond)
	}

	killedIn := map[string]int{}
	totalKills, lostUPIDs, targetOnly := 0, 0, 0
	diskKey := regexp.MustCompile(`^(scsi|virtio|sata|ide|efidisk|tpmstate)\d+$`)

	// round makes the requests in asks and carries them out: ticks killed
	// at random instants (every tick until minKills kills, then every other
	// one) until every VM asked is ready again, then a few unkilled ticks
	// that must change nothing; then it checks the round's outcome.
	round := func(name string, asks map[string]migAsk) {
		t.Helper()
		rbegan := time.Now()
		st := sim.state(t)
		seenTasks := map[string]bool{}
		for _, tk := range st.Tasks {
			seenTasks[tk.UPID] = true
		}
		firstRequest := st.Requests
		pveBefore := map[int]pvesim.VMState{}
		for _, pv := range st.VMs {
			pveBefore[pv.VMID] = pv
		}
		for svc, a := range asks {
			require.Equal(t, a.from, pveBefore[vmid[svc]].Node, "%s: %s: record and PVE disagree on the node", name, svc)
			args := []string{"vm", "migrate", svc, "--node", a.node}
			if a.online {
				args = append(args, "--online")
			}
			p := pvectlProc(t, dir, []string{nextNow()}, args...)
			require.Equal(t, 0, p.exitCode(), "%v: %s%s", args, p.stdout.String(), p.stderr.String())
			require.Contains(t, p.stdout.String(), "status migrate", "%v", args)
		}
		// expected is the node a VM must end on; for auto, "" until a
		// target is chosen (any node but the one it was on).
		expected := map[string]string{}
		for svc, a := range asks {
			if a.node != "auto" {
				expected[svc] = a.node
			}
		}
		// chosen is the target each VM's record named first: it must not
		// change, and PVE must never put the VM anywhere else.
		chosen := map[string]string{}
		watch := func(when string, vms []vmJSON, pve map[int]pvesim.VMState) {
			t.Helper()
			for _, v := range vms {
				a, ok := asks[v.ServiceID]
				if !ok {
					continue
				}
				if v.Status == "migrate" || v.Status == "migrate_moved" {
					if v.TargetNode != "" && v.TargetNode != a.from {
						if c := chosen[v.ServiceID]; c == "" {
							chosen[v.ServiceID] = v.TargetNode
						} else {
							require.Equal(t, c, v.TargetNode, "%s: %s: %s: target changed after it was chosen", name, when, v.ServiceID)
						}
					}
				}
				if pve == nil {
					continue
				}
				pv := pve[vmid[v.ServiceID]]
				if pv.Node != a.from {
					require.NotEmpty(t, chosen[v.ServiceID], "%s: %s: %s moved to %s before pvectl recorded a target", name, when, v.ServiceID, pv.Node)
					require.Equal(t, chosen[v.ServiceID], pv.Node, "%s: %s: %s moved to a node other than its target", name, when, v.ServiceID)
				}
			}
		}
		pveNow := func() (pvesim.State, map[int]pvesim.VMState) {
			st := sim.state(t)
			m := map[int]pvesim.VMState{}
			for _, pv := range st.VMs {
				m[pv.VMID] = pv
			}
			return st, m
		}
		// seenPending: the UPIDs the records named as pending task; a
		// migration whose UPID never shows there was started by a tick
		// killed before it wrote it.
		seenPending := map[string]bool{}
		converged := func(vms []vmJSON) bool {
			for _, v := range vms {
				if v.PendingTask != nil {
					seenPending[v.PendingTask.UPID] = true
				}
			}
			for _, v := range vms {
				if _, ok := asks[v.ServiceID]; ok && v.Status != "ready" {
					return false
				}
			}
			return true
		}

		minKills := max(crashKills/4, 6)
		kills := 0
		var vms []vmJSON
		for run := 0; ; run++ {
			vms = listVMs(t, dir)
			if converged(vms) {
				break
			}
			if run >= 40*minKills || slices.ContainsFunc(vms, func(v vmJSON) bool { return v.Held || strings.HasPrefix(v.Status, "error") }) {
				b, _ := json.MarshalIndent(vms, "", "  ")
				var logs strings.Builder
				for svc := range asks {
					fmt.Fprintf(&logs, "--- %s\n%s", svc, vmLog(svc))
				}
				t.Fatalf("%s: not converged (or held) after %d runs, %d kills:\n%s\n%s", name, run, kills, b, logs.String())
			}
			if run == 2 {
				// The same request again while it is carried out changes
				// nothing (a VM already back to ready is left alone: asking
				// again would be a new migration).
				for _, v := range vms {
					a, ok := asks[v.ServiceID]
					if !ok || (v.Status != "migrate" && v.Status != "migrate_moved") {
						continue
					}
					args := []string{"vm", "migrate", v.ServiceID, "--node", a.node}
					if a.online {
						args = append(args, "--online")
					}
					p := pvectlProc(t, dir, []string{nextNow()}, args...)
					require.Equal(t, 0, p.exitCode(), "%v again: %s%s", args, p.stdout.String(), p.stderr.String())
					require.Contains(t, p.stdout.String(), "nothing changed", "%v again", args)
				}
			}
			if kills >= minKills && run%2 == 1 { // an unkilled tick, so the work keeps moving
				tick(name)
				_, pve := pveNow()
				after := listVMs(t, dir)
				converged(after) // records the pending UPIDs
				watch(fmt.Sprintf("after unkilled run %d", run), after, pve)
				time.Sleep(50 * time.Millisecond) // let pvesim's real-time tasks move
				continue
			}
			p := startTick(t, dir, nextNow())
			select {
			case <-p.done:
				require.Equal(t, 0, p.code(), "%s: unkilled tick failed:\n%s%s", name, p.stdout.String(), p.stderr.String())
			case <-time.After(time.Duration(rng.Int64N(int64(120*time.Millisecond) + 1))):
				_ = p.cmd.Process.Signal(syscall.SIGKILL)
				<-p.done
				if p.code() != -1 {
					require.Equal(t, 0, p.code(), "%s: tick failed:\n%s%s", name, p.stdout.String(), p.stderr.String())
					break
				}
				kills++
				after := listVMs(t, dir)
				converged(after) // records the pending UPIDs
				// A VM's states at the kill: the one the tick found and the
				// one it left.
				in := map[string]map[string]bool{}
				for _, list := range [][]vmJSON{vms, after} {
					for _, v := range list {
						if _, ok := asks[v.ServiceID]; ok && v.Status != "ready" {
							if in[v.ServiceID] == nil {
								in[v.ServiceID] = map[string]bool{}
							}
							in[v.ServiceID][v.Status] = true
						}
					}
				}
				for _, sts := range in {
					for s := range sts {
						killedIn[s]++
					}
				}
				// Where in the Migrate step the kill landed: after this tick
				// kept the target but before PVE was asked.
				st, pve := pveNow()
				started := map[int]bool{}
				for _, tk := range st.Tasks {
					if tk.Type == "qmigrate" && !seenTasks[tk.UPID] {
						started[atoi(tk.ID)] = true
					}
				}
				targetBefore := map[string]string{}
				for _, v := range vms {
					targetBefore[v.ServiceID] = v.TargetNode
				}
				for _, v := range after {
					a, ok := asks[v.ServiceID]
					if ok && v.Status == "migrate" && v.TargetNode != "" && v.TargetNode != a.from &&
						targetBefore[v.ServiceID] != v.TargetNode && !started[vmid[v.ServiceID]] {
						targetOnly++
					}
				}
				watch(fmt.Sprintf("after kill %d", kills), after, pve)
			}
		}
		totalKills += kills
		// Unkilled ticks after the round: nothing moves, nothing is sent
		// (the task checks below include them).
		for range 3 {
			tick(name + ": after")
			time.Sleep(100 * time.Millisecond)
		}
		vms = listVMs(t, dir)
		require.True(t, converged(vms), "%s: a VM left ready in the ticks after the round", name)
		t.Logf("%s: %d kills, converged in %s", name, kills, time.Since(rbegan).Round(time.Millisecond))

		st, pve := pveNow()
		watch("at the end", vms, pve)
		tasks := map[int][]pvesim.TaskState{}
		for _, tk := range st.Tasks {
			if !seenTasks[tk.UPID] {
				tasks[atoi(tk.ID)] = append(tasks[atoi(tk.ID)], tk)
			}
		}
		for id := range tasks {
			slices.SortStableFunc(tasks[id], func(a, b pvesim.TaskState) int { return a.Start.Compare(b.Start) })
		}
		var reqs []pvesim.Request
		sim.get(t, "/requests", &reqs)
		require.GreaterOrEqual(t, len(reqs), firstRequest)
		posts := map[int][]pvesim.Request{}
		for _, r := range reqs[firstRequest:] {
			if r.Method != "POST" || !strings.HasSuffix(r.Path, "/migrate") {
				continue
			}
			parts := strings.Split(r.Path, "/") // /nodes/N/qemu/ID/migrate
			id := atoi(parts[len(parts)-2])
			posts[id] = append(posts[id], r)
		}

		owner := map[string]string{}
		for _, v := range vms {
			for _, ip := range v.IPs {
				require.Empty(t, owner[ip], "%s: address %s held by %s and %s", name, ip, owner[ip], v.ServiceID)
				owner[ip] = v.ServiceID
			}
			a, ok := asks[v.ServiceID]
			if !ok {
				continue
			}
			svc, id := v.ServiceID, vmid[v.ServiceID]
			before := pveBefore[id]
			pv, ok := pve[id]
			require.True(t, ok, "%s: %s: VM %d gone from PVE", name, svc, id)
			ctx := fmt.Sprintf("%s: %s (VMID %d, %s → --node %s, online %v; tasks %s)", name, svc, id, a.from, a.node, a.online, taskTypes(tasks[id]))

			// On the node asked, in the record and in PVE.
			want := expected[svc]
			if want == "" {
				want = chosen[svc]
				require.NotEmpty(t, want, "%s: no target seen", ctx)
				require.NotEqual(t, a.from, want, "%s: auto chose the node the VM was on", ctx)
				require.Contains(t, nodes, want, ctx)
			}
			require.Equal(t, want, v.Node, "%s: node in the record", ctx)
			require.Equal(t, want, v.TargetNode, "%s: target in the record", ctx)
			require.Equal(t, want, pv.Node, "%s: node in PVE", ctx)
			require.Empty(t, pv.Lock, "%s: VM locked", ctx)

			// No double action: one successful migration from the old node
			// and no other task (a running VM stays running, a stopped one
			// stopped).
			moves := 0
			for _, tk := range tasks[id] {
				require.Equal(t, "qmigrate", tk.Type, "%s: a %s task during the migration", ctx, tk.Type)
				if tk.ExitStatus == "OK" {
					moves++
					require.Equal(t, a.from, tk.Node, "%s: migration run from %s", ctx, tk.Node)
					if !seenPending[tk.UPID] {
						lostUPIDs++
					}
				} else {
					t.Logf("%s: qmigrate %s ended %q", ctx, tk.UPID, tk.ExitStatus)
				}
			}
			require.Equal(t, 1, moves, "%s: successful migrations", ctx)
			require.Equal(t, before.Status, pv.Status, "%s: power state changed by the migration", ctx)
			// PVE accepted one migrate request; those it refused (locked, or
			// target is the local node) moved nothing.
			accepted := 0
			for _, r := range posts[id] {
				if r.Status != 200 {
					t.Logf("%s: POST %s refused (%d %s)", ctx, r.Path, r.Status, r.Message)
					continue
				}
				accepted++
				require.Equal(t, want, r.Params["target"], "%s: migrate request target", ctx)
				if before.Status == "running" {
					require.Equal(t, "1", r.Params["online"], "%s: live migration without online=1: %v", ctx, r.Params)
					require.Equal(t, "1", r.Params["with-local-disks"], "%s: live migration without with-local-disks=1: %v", ctx, r.Params)
				} else {
					require.NotEqual(t, "1", r.Params["online"], "%s: offline migration with online=1: %v", ctx, r.Params)
				}
			}
			require.Equal(t, 1, accepted, "%s: migrate requests PVE accepted", ctx)

			// Unchanged by the move: VMID, addresses, MAC and the rest of the
			// config but the disks' volume names, the IP set, the firewall.
			require.Equal(t, id, *v.VMID, "%s: VMID changed", ctx)
			require.Equal(t, ips[svc], slices.Sorted(slices.Values(v.IPs)), "%s: addresses changed", ctx)
			require.NotEmpty(t, pv.Config["net0"], ctx)
			require.Equal(t, before.Config["net0"], pv.Config["net0"], "%s: net0 (MAC) changed", ctx)
			for k, val := range before.Config {
				if diskKey.MatchString(k) && !strings.Contains(val, "media=cdrom") {
					require.Contains(t, pv.Config, k, "%s: disk %s lost", ctx, k)
					continue
				}
				require.Equal(t, val, pv.Config[k], "%s: config %s changed", ctx, k)
			}
			for k := range pv.Config {
				_, had := before.Config[k]
				require.True(t, had, "%s: config %s=%s added by the migration", ctx, k, pv.Config[k])
			}
			require.Equal(t, before.Firewall, pv.Firewall, "%s: firewall options", ctx)
			require.NotEmpty(t, pv.IPSets["ipfilter-net0"], "%s: no anti-spoofing IP set", ctx)
			require.Equal(t, before.IPSets, pv.IPSets, "%s: IP sets", ctx)
			got := slices.Clone(pv.IPSets["ipfilter-net0"])
			for i := range got {
				got[i] = strings.TrimSuffix(strings.TrimSuffix(got[i], "/32"), "/128")
			}
			require.Equal(t, ips[svc], slices.Sorted(slices.Values(got)), "%s: anti-spoofing IP set vs addresses", ctx)
		}
		// Every image volume is on its VM's node (none left behind, none
		// copied twice).
		vols := map[string]int{}
		for _, n := range st.Nodes {
			for _, s := range n.Storages {
				for _, vol := range s.Volumes {
					if vol.Content != "images" || vol.VMID == 9000 {
						continue
					}
					pv, ok := pve[vol.VMID]
					require.True(t, ok, "%s: volume %s on %s belongs to no VM", name, vol.VolID, n.Name)
					require.Equal(t, n.Name, pv.Node, "%s: volume %s left on %s after VM %d moved", name, vol.VolID, n.Name, vol.VMID)
					vols[n.Name+" "+vol.VolID]++
				}
			}
		}
		for _, pv := range pve {
			if pv.Template {
				continue
			}
			for k, val := range pv.Config {
				if !diskKey.MatchString(k) || strings.Contains(val, "media=cdrom") {
					continue
				}
				volid := strings.SplitN(val, ",", 2)[0]
				require.Equal(t, 1, vols[pv.Node+" "+volid], "%s: VM %d's disk %s (%s) is not on its node %s", name, pv.VMID, k, volid, pv.Node)
			}
		}
	}

	// Round 1: the roles' requests.
	asks1 := map[string]migAsk{}
	for _, v := range fleet {
		svc := v.ServiceID
		a := migAsk{from: v.Node, online: role[svc] == migOnlineAuto || role[svc] == migOnlineNode}
		if role[svc] == migOnlineAuto || role[svc] == migOfflineAuto {
			a.node = "auto"
		} else {
			a.node = otherNode(v.Node)
		}
		asks1[svc] = a
	}
	round("migrate round 1", asks1)

	// Round 2: back to where they were, auto ↔ named.
	asks2 := map[string]migAsk{}
	for _, v := range listVMs(t, dir) {
		a1, ok := asks1[v.ServiceID]
		if !ok {
			continue
		}
		a := migAsk{from: v.Node, online: a1.online, node: "auto"}
		if a1.node == "auto" {
			a.node = a1.from
		}
		asks2[v.ServiceID] = a
	}
	round("migrate round 2", asks2)
	// migrate_moved lasts one short step: when no kill landed in it, more
	// rounds (each VM back to another node) until one does, at most four.
	for extra := 0; killedIn["migrate_moved"] < 1 && extra < 4; extra++ {
		next := map[string]migAsk{}
		for _, v := range listVMs(t, dir) {
			if a, ok := asks1[v.ServiceID]; ok {
				next[v.ServiceID] = migAsk{from: v.Node, online: a.online, node: otherNode(v.Node)}
			}
		}
		round(fmt.Sprintf("migrate round %d (no kill in migrate_moved yet)", 3+extra), next)
	}

	t.Logf("migrate: %d kills; VMs by state at the kills: %v; kills after a tick kept the target but before PVE was asked: %d; migrations whose UPID a kill kept from the record: %d; total %s",
		totalKills, killedIn, targetOnly, lostUPIDs, time.Since(began).Round(time.Millisecond))
	require.GreaterOrEqual(t, killedIn["migrate"], 10, "kills while VMs were in migrate: %v", killedIn)
	require.GreaterOrEqual(t, killedIn["migrate_moved"], 1, "kills while VMs were in migrate_moved: %v", killedIn)

	var rejected []pvesim.Request
	sim.get(t, "/requests?rejected=1", &rejected)
	require.Empty(t, rejected, "requests rejected by schema validation")
	s, err := store.Open(context.Background(), filepath.Join(dir, "state", "pvectl.db"))
	require.NoError(t, err)
	defer s.Close()
	ic, err := s.Pragma(context.Background(), "integrity_check")
	require.NoError(t, err)
	require.Equal(t, "ok", ic)
}

// atoi is strconv.Atoi for IDs known to be numbers (-1 otherwise).
func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
