package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/store"
	"github.com/stretchr/testify/require"
)

// crashBackupQuota is the products' backup_quota in the backup phase.
const crashBackupQuota = 2

// crashBackupSeq is what each VM of the backup phase asks for in round 1,
// in order, each after the previous one ended: with quota 2, the fourth
// deletes the first (the oldest unprotected; the protected second is not
// counted) and the fifth the third.
var crashBackupSeq = []struct {
	note      string
	protected bool
}{{"a", false}, {"p", true}, {"b", false}, {"c", false}, {"d", false}}

// crashBackups is the crash test of backups and restores (issue 12) on a few
// of the ready, running VMs the earlier phases left. The config gains
// backup_quota 2 on every product and intervals that make backup_status,
// restore_backup and schedule_backup due on every tick, and the phase runs
// `pvectl tick` (every due task, as cron does), killed at random instants
// spread over the whole tick:
//
//  1. Backups and rotation: five `backup now` per VM in sequence (the
//     second protected), so the fourth and fifth each rotate first. Per VM
//     exactly five vzdump tasks (one per request, all OK), every row ended
//     ok, the imgdel tasks removed exactly the first and the third archive
//     in that order (the oldest unprotected at the time), and the archives
//     left are the protected one and the two newest. At no point more than
//     the quota of unprotected archives, nor two vzdumps of a VM at once.
//  2. A scheduled slot that becomes due during killed ticks: exactly one
//     row for the slot, one vzdump per VM, the oldest unprotected deleted.
//  3. Restore: every VM changes package (unkilled ticks), two get
//     snapshots, then each restores its protected archive (made under the
//     old product) under kills. Every VM ends ready, running, with its
//     current product's CPU, memory and additional disk, MAC unchanged, no
//     snapshot or unused disk left, and exactly one qmrestore; and never,
//     after any run nor in unkilled ticks after the round, is a VM ready
//     in the record while stopped in PVE.
//
// Kills are counted per backup state and per restore state, with minimums.
func crashBackups(t *testing.T, dir string, sim *pvesimProc, rng *rand.Rand, nextNow func() string) {
	began := time.Now()
	ctx := context.Background()

	// The config: backups on, the backup tasks due every tick, schedules
	// in UTC, the test binary's test_sleep off.
	cfgPath := filepath.Join(dir, "pvectl.yaml")
	raw, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	tmpl := "    template: {vmid: 9000, node: pve1}\n"
	require.Contains(t, string(raw), tmpl)
	cfg := strings.ReplaceAll(string(raw), tmpl, fmt.Sprintf("    backup_quota: %d\n%s", crashBackupQuota, tmpl))
	require.NotContains(t, cfg, "\ntasks:")
	cfg += "backups: {timezone: UTC}\ntasks:\n  intervals: {backup_status: 1m, restore_backup: 1m, schedule_backup: 1m, test_sleep: 0}\n"
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))
	if p := pvectlProc(t, dir, nil, "tasks"); p.exitCode() != 0 {
		t.Fatalf("config with backups: %s%s", p.stdout.String(), p.stderr.String())
	}

	// The VMs: ready and running (the earlier phases leave some suspended
	// or stopped).
	pve0 := map[int]pvesim.VMState{}
	for _, pv := range sim.state(t).VMs {
		pve0[pv.VMID] = pv
	}
	var fleet []vmJSON
	vms0 := listVMs(t, dir)
	rank := map[string]int{"xl": 0, "small": 1} // they change package before the restore
	slices.SortStableFunc(vms0, func(a, b vmJSON) int {
		ra, oka := rank[a.Product]
		rb, okb := rank[b.Product]
		if !oka {
			ra = 2
		}
		if !okb {
			rb = 2
		}
		return ra - rb
	})
	for _, v := range vms0 {
		if v.Status == "ready" && v.VMID != nil && pve0[*v.VMID].Status == "running" && len(fleet) < 4 {
			fleet = append(fleet, v)
		}
	}
	require.GreaterOrEqual(t, len(fleet), 3, "ready, running VMs left for the backup phase")
	vmid := map[string]int{}
	byVMID := map[int]string{}
	mac := map[string]string{}
	macRE := regexp.MustCompile(`^[a-z0-9]+=([0-9A-Fa-f:]{17})`)
	for _, v := range fleet {
		vmid[v.ServiceID] = *v.VMID
		byVMID[*v.VMID] = v.ServiceID
		m := macRE.FindStringSubmatch(pve0[*v.VMID].Config["net0"])
		require.NotNil(t, m, "%s: net0 %q", v.ServiceID, pve0[*v.VMID].Config["net0"])
		mac[v.ServiceID] = m[1]
	}

	s, err := store.Open(ctx, filepath.Join(dir, "state", "pvectl.db"))
	require.NoError(t, err)
	defer s.Close()
	recID := map[string]int64{}
	for svc := range vmid {
		rec, err := s.VMFind(ctx, svc)
		require.NoError(t, err)
		recID[svc] = rec.ID
	}
	rowsOf := func(svc string) []store.Backup {
		t.Helper()
		rows, err := s.BackupsOf(ctx, recID[svc])
		require.NoError(t, err)
		return rows
	}

	// The tasks of the phase so far are the baseline of each round.
	seen := map[string]bool{}
	for _, tk := range sim.state(t).Tasks {
		seen[tk.UPID] = true
	}
	roundTasks := func(st pvesim.State, since map[string]bool) map[int][]pvesim.TaskState {
		out := map[int][]pvesim.TaskState{}
		for _, tk := range st.Tasks {
			if since[tk.UPID] {
				continue
			}
			id := atoi(strings.SplitN(tk.ID, "@", 2)[0]) // imgdel: "VMID@storage"
			if _, ok := byVMID[id]; ok {
				out[id] = append(out[id], tk)
			}
		}
		for id := range out {
			slices.SortStableFunc(out[id], func(a, b pvesim.TaskState) int { return a.Start.Compare(b.Start) })
		}
		return out
	}
	snapshotSeen := func() map[string]bool {
		m := map[string]bool{}
		for _, tk := range sim.state(t).Tasks {
			m[tk.UPID] = true
		}
		return m
	}

	// watch checks what must hold after every run: at most the quota of
	// unprotected archives per VM, no two vzdumps of a VM at once, and no
	// VM ready in its record while stopped in PVE.
	archives := func(st pvesim.State, id int) []pvesim.Volume {
		var out []pvesim.Volume
		for _, n := range st.Nodes {
			for _, sto := range n.Storages {
				for _, vol := range sto.Volumes {
					if vol.Content == "backup" && vol.VMID == id {
						out = append(out, vol)
					}
				}
			}
		}
		return out
	}
	watch := func(when string) {
		t.Helper()
		vms := listVMs(t, dir)
		st := sim.state(t)
		pve := map[int]pvesim.VMState{}
		for _, pv := range st.VMs {
			pve[pv.VMID] = pv
		}
		for _, v := range vms {
			id, ok := vmid[v.ServiceID]
			if !ok {
				continue
			}
			if v.Status == "ready" {
				require.Equal(t, "running", pve[id].Status, "%s: %s (VMID %d) is ready in its record but %s in PVE (lock %q)",
					when, v.ServiceID, id, pve[id].Status, pve[id].Lock)
			}
			unprotected := 0
			for _, a := range archives(st, id) {
				if !a.Protected {
					unprotected++
				}
			}
			require.LessOrEqual(t, unprotected, crashBackupQuota, "%s: %s has %d unprotected archives", when, v.ServiceID, unprotected)
		}
		running := map[string]int{}
		for _, tk := range st.Tasks {
			if tk.Type == "vzdump" && tk.Status == "running" {
				running[tk.ID]++
				require.LessOrEqual(t, running[tk.ID], 1, "%s: two vzdumps of VM %s at once", when, tk.ID)
			}
		}
	}

	// A kill lands anywhere in a tick: the delay is drawn up to a bit more
	// than an unkilled tick takes (process_vms runs first; restore_backup,
	// backup_status and schedule_backup later in the same process).
	tickTook := 200 * time.Millisecond
	killedIn := map[string]int{}
	totalKills := 0
	// round runs ticks until done, killing those kill(run) picks; labels
	// names the states of the round's work, counted at each kill (those
	// the tick found and those it left).
	round := func(name string, budget int, kill func(run int) bool, labels func() []string, done func() bool) int {
		t.Helper()
		rbegan := time.Now()
		kills := 0
		lastOut := ""
		for run := 0; !done(); run++ {
			if run >= budget {
				b, _ := json.MarshalIndent(listVMs(t, dir), "", "  ")
				var rows strings.Builder
				for svc := range vmid {
					for _, r := range rowsOf(svc) {
						fmt.Fprintf(&rows, "%s: #%d %s slot=%q %s upid=%q rotate=%q/%q vol=%q err=%q\n", svc, r.ID, r.Kind, r.Slot, r.State, r.UPID, r.RotateVolID, r.RotateUPID, r.VolID, r.Error)
					}
				}
				t.Fatalf("%s: not done after %d runs (%d kills):\n%s\nbackups:\n%s\nlast tick:\n%s", name, run, kills, b, rows.String(), lastOut)
			}
			var before []string
			if labels != nil {
				before = labels()
			}
			startedAt := time.Now()
			p := pvectlProc(t, dir, []string{nextNow()}, "tick")
			tp := &tickProc{proc: p, done: make(chan struct{})}
			go func() { tp.err = tp.cmd.Wait(); close(tp.done) }()
			var timer <-chan time.Time
			if kill(run) {
				timer = time.After(time.Duration(rng.Int64N(int64(tickTook)*13/10 + 1)))
			}
			select {
			case <-tp.done:
				lastOut = tp.stdout.String() + tp.stderr.String()
				require.Equal(t, 0, tp.code(), "%s: tick failed:\n%s%s", name, tp.stdout.String(), tp.stderr.String())
				tickTook = (3*tickTook + time.Since(startedAt)) / 4
			case <-timer:
				_ = tp.cmd.Process.Signal(syscall.SIGKILL)
				<-tp.done
				if tp.code() != -1 {
					require.Equal(t, 0, tp.code(), "%s: tick failed:\n%s%s", name, tp.stdout.String(), tp.stderr.String())
					break
				}
				kills++
				if labels != nil {
					in := map[string]bool{}
					for _, l := range append(before, labels()...) {
						in[l] = true
					}
					for l := range in {
						killedIn[l]++
					}
				}
			}
			watch(fmt.Sprintf("%s, after run %d", name, run))
			time.Sleep(20 * time.Millisecond) // let pvesim's real-time tasks move
		}
		// Unkilled ticks after the round: everything stays as it is.
		for i := range 3 {
			p := pvectlProc(t, dir, []string{nextNow()}, "tick")
			require.Equal(t, 0, p.exitCode(), "%s: tick after the round: %s%s", name, p.stdout.String(), p.stderr.String())
			watch(fmt.Sprintf("%s, unkilled tick %d after the round", name, i))
			time.Sleep(100 * time.Millisecond)
		}
		require.True(t, done(), "%s: undone by the ticks after the round", name)
		totalKills += kills
		t.Logf("%s: %d kills, done in %s", name, kills, time.Since(rbegan).Round(time.Millisecond))
		return kills
	}
	killMost := func(run int) bool { return run%3 != 2 }
	// backupLabels: the state of each VM's active backup row.
	backupLabels := func() []string {
		var out []string
		for svc := range vmid {
			for _, b := range rowsOf(svc) {
				switch {
				case !b.Active():
				case b.State == store.BackupStateRunning && b.UPID == "":
					out = append(out, "backup running (no UPID)")
				case b.State == store.BackupStateRotating && b.RotateUPID == "":
					out = append(out, "backup rotating (no task)")
				default:
					out = append(out, "backup "+b.State)
				}
			}
		}
		return out
	}
	failIfFailed := func(svc string, rows []store.Backup) {
		t.Helper()
		for _, b := range rows {
			require.NotEqual(t, store.BackupStateFailed, b.State, "%s: backup #%d failed: %s", svc, b.ID, b.Error)
		}
	}
	// nextSecond waits until PVE's clock (the real one) is past the second
	// of the VM's last vzdump: archives are named by their start second.
	lastStart := map[string]int64{}
	nextSecond := func(svc string) {
		for time.Now().Unix() <= lastStart[svc] {
			time.Sleep(20 * time.Millisecond)
		}
	}
	upidStart := func(upid string) int64 {
		parts := strings.Split(upid, ":")
		require.GreaterOrEqual(t, len(parts), 6, upid)
		n, err := strconv.ParseInt(parts[4], 16, 64)
		require.NoError(t, err, upid)
		return n
	}

	// Round 1: backups and rotation.
	base1 := snapshotSeen()
	rowIDs := map[string][]int64{} // per VM, in request order
	volOf := map[int64]string{}    // row → its archive
	asked := map[string]int{}      // requests made per VM
	request := func(svc string) {
		i := asked[svc]
		nextSecond(svc)
		args := []string{"backup", "now", svc, "--note", crashBackupSeq[i].note}
		if crashBackupSeq[i].protected {
			args = append(args, "--protected")
		}
		p := pvectlProc(t, dir, []string{nextNow()}, args...)
		require.Equal(t, 0, p.exitCode(), "%v: %s%s", args, p.stdout.String(), p.stderr.String())
		require.Contains(t, p.stdout.String(), "backup queued", "%v", args)
		rows := rowsOf(svc)
		rowIDs[svc] = append(rowIDs[svc], rows[len(rows)-1].ID)
		asked[svc]++
	}
	// backupsDone asks each VM's next backup once its previous one ended,
	// and reports whether all of them ended.
	backupsDone := func() bool {
		all := true
		for svc := range vmid {
			rows := rowsOf(svc)
			failIfFailed(svc, rows)
			active := false
			for _, b := range rows {
				if b.Active() {
					active = true
				}
				if b.State == store.BackupStateOK && volOf[b.ID] == "" {
					require.NotEmpty(t, b.VolID, "%s: backup #%d ok without an archive", svc, b.ID)
					volOf[b.ID] = b.VolID
				}
				if b.UPID != "" {
					lastStart[svc] = max(lastStart[svc], upidStart(b.UPID))
				}
			}
			if active {
				all = false
				continue
			}
			if asked[svc] < len(crashBackupSeq) {
				request(svc)
				all = false
			}
		}
		return all
	}
	round("backups round 1", 60*len(crashBackupSeq), killMost, backupLabels, backupsDone)

	st := sim.state(t)
	tasks1 := roundTasks(st, base1)
	for svc, id := range vmid {
		ctxt := fmt.Sprintf("backups round 1: %s (VMID %d; tasks %s)", svc, id, taskTypes(tasks1[id]))
		ids := rowIDs[svc]
		require.Len(t, ids, len(crashBackupSeq), ctxt)
		for _, b := range rowsOf(svc) {
			if slices.Contains(ids, b.ID) {
				require.Equal(t, store.BackupStateOK, b.State, "%s: backup #%d", ctxt, b.ID)
			}
		}
		vzdumps, deleted := 0, []string{}
		for _, tk := range tasks1[id] {
			switch tk.Type {
			case "vzdump":
				vzdumps++
				require.Equal(t, "OK", tk.ExitStatus, "%s: vzdump %s", ctxt, tk.UPID)
			case "imgdel":
				require.Equal(t, "OK", tk.ExitStatus, "%s: imgdel %s", ctxt, tk.UPID)
				for _, l := range tk.Log {
					if _, v, ok := strings.Cut(l, "Removed volume '"); ok {
						deleted = append(deleted, strings.TrimSuffix(v, "'"))
					}
				}
			default:
				t.Fatalf("%s: a %s task during the backups", ctxt, tk.Type)
			}
		}
		require.Equal(t, len(crashBackupSeq), vzdumps, "%s: vzdumps for %d requests", ctxt, len(crashBackupSeq))
		// a, p, b, c, d: c deletes a, d deletes b.
		require.Equal(t, []string{volOf[ids[0]], volOf[ids[2]]}, deleted, "%s: archives deleted by the rotation", ctxt)
		var left []string
		for _, a := range archives(st, id) {
			left = append(left, a.VolID)
			require.Equal(t, a.VolID == volOf[ids[1]], a.Protected, "%s: %s protected", ctxt, a.VolID)
		}
		slices.Sort(left)
		want := []string{volOf[ids[1]], volOf[ids[3]], volOf[ids[4]]}
		slices.Sort(want)
		require.Equal(t, want, left, "%s: archives left", ctxt)
	}

	// Round 2: a scheduled slot that becomes due during killed ticks.
	base2 := snapshotSeen()
	for svc := range vmid {
		nextSecond(svc)
	}
	nowEnv := nextNow()
	clock, err := time.Parse(time.RFC3339, strings.TrimPrefix(nowEnv, "PVECTL_NOW="))
	require.NoError(t, err)
	// Each request and each tick moves the clock a minute: the slot is
	// twelve minutes after the last schedule is saved, so about seven
	// killed ticks run before it is due (a kill that lands there is counted
	// as "slot not queued"; with five minutes, all of them missed about one
	// run in ten).
	slotAt := clock.UTC().Add(time.Duration(len(fleet)+12) * time.Minute).Truncate(time.Minute)
	slot := slotAt.Format("2006-01-02T15:04")
	for svc := range vmid {
		p := pvectlProc(t, dir, []string{nextNow()}, "backup", "schedule", svc, "--days", "daily", "--at", slotAt.Format("15:04"))
		require.Equal(t, 0, p.exitCode(), "backup schedule %s: %s%s", svc, p.stdout.String(), p.stderr.String())
	}
	slotLabels := func() []string {
		out := backupLabels()
		for svc := range vmid {
			if !slices.ContainsFunc(rowsOf(svc), func(b store.Backup) bool { return b.Slot == slot }) {
				out = append(out, "slot not queued")
			}
		}
		return out
	}
	slotDone := func() bool {
		for svc := range vmid {
			rows := rowsOf(svc)
			failIfFailed(svc, rows)
			i := slices.IndexFunc(rows, func(b store.Backup) bool { return b.Slot == slot })
			if i < 0 || rows[i].State != store.BackupStateOK {
				return false
			}
		}
		return true
	}
	round("backups round 2 (slot "+slot+")", 80, killMost, slotLabels, slotDone)
	st = sim.state(t)
	tasks2 := roundTasks(st, base2)
	for svc, id := range vmid {
		ctxt := fmt.Sprintf("backups round 2: %s (VMID %d; tasks %s)", svc, id, taskTypes(tasks2[id]))
		var slotRows []store.Backup
		for _, b := range rowsOf(svc) {
			if b.Kind == store.BackupScheduled {
				slotRows = append(slotRows, b)
			}
		}
		require.Len(t, slotRows, 1, "%s: scheduled rows", ctxt)
		require.Equal(t, slot, slotRows[0].Slot, ctxt)
		vzdumps := 0
		for _, tk := range tasks2[id] {
			if tk.Type == "vzdump" {
				vzdumps++
				require.Equal(t, "OK", tk.ExitStatus, "%s: vzdump %s", ctxt, tk.UPID)
			}
		}
		require.Equal(t, 1, vzdumps, "%s: vzdumps for one slot", ctxt)
		ids := rowIDs[svc]
		var left []string
		for _, a := range archives(st, id) {
			left = append(left, a.VolID)
		}
		slices.Sort(left)
		want := []string{volOf[ids[1]], volOf[ids[4]], slotRows[0].VolID}
		slices.Sort(want)
		require.Equal(t, want, left, "%s: archives left (the oldest unprotected deleted)", ctxt)
		p := pvectlProc(t, dir, []string{nextNow()}, "backup", "schedule", svc, "--off")
		require.Equal(t, 0, p.exitCode(), "backup schedule --off: %s%s", p.stdout.String(), p.stderr.String())
	}

	// Round 3: restore. Each VM changes package first (unkilled ticks), so
	// the archive brings back the old product and the re-apply matters.
	//
	// xl → small: the archive brings back an additional disk the product
	// no longer has (the re-apply removes it again). small → big: the
	// archive has no additional disk while the VM has one; PVE keeps the
	// VM's as unused0 and the restore step attaches it again (no leaked
	// volume, no second disk). Others keep theirs.
	product := map[string]string{}
	for _, v := range fleet {
		product[v.ServiceID] = v.Product
		switch v.Product {
		case "xl":
			product[v.ServiceID] = "small"
		case "small":
			product[v.ServiceID] = "big"
		default:
			continue
		}
		p := pvectlProc(t, dir, []string{nextNow()}, "vm", "change-package", v.ServiceID, "--product", product[v.ServiceID])
		require.Equal(t, 0, p.exitCode(), "change-package: %s%s", p.stdout.String(), p.stderr.String())
	}
	allReady := func() bool {
		for _, v := range listVMs(t, dir) {
			if _, ok := vmid[v.ServiceID]; !ok {
				continue
			}
			require.False(t, v.Held || strings.HasPrefix(v.Status, "error"), "%s: %s held: %s", v.ServiceID, v.Status, v.LastError)
			if v.Status != "ready" {
				return false
			}
		}
		return true
	}
	grown := 0
	for svc, p := range product {
		if p == "big" && slices.ContainsFunc(fleet, func(v vmJSON) bool { return v.ServiceID == svc && v.Product == "small" }) {
			grown++
		}
	}
	require.GreaterOrEqual(t, grown, 1, "a VM whose archive lacks the additional disk it has at the restore: %v", product)
	round("change-package before the restore", 80, func(int) bool { return false }, nil, allReady)

	// Snapshots on half the VMs: the restore deletes them first.
	pveAPI, err := proxmox.New(proxmox.Options{URL: sim.apiURL, TokenID: sim.tokenID, TokenSecret: sim.secret})
	require.NoError(t, err)
	pve1 := map[int]pvesim.VMState{}
	for _, pv := range sim.state(t).VMs {
		pve1[pv.VMID] = pv
	}
	for i, v := range fleet {
		if i%2 == 1 {
			continue
		}
		for _, name := range []string{"before_update", "weekly"} {
			task, err := pveAPI.CreateSnapshot(ctx, proxmox.VMRef{Node: pve1[vmid[v.ServiceID]].Node, VMID: vmid[v.ServiceID]}, proxmox.SnapshotRequest{Name: name})
			require.NoError(t, err)
			for w := 0; ; w++ {
				require.Less(t, w, 200, "snapshot %s of %s did not end", name, v.ServiceID)
				st := sim.state(t)
				i := slices.IndexFunc(st.Tasks, func(tk pvesim.TaskState) bool { return tk.UPID == task.UPID })
				if i >= 0 && st.Tasks[i].Status == "stopped" {
					require.Equal(t, "OK", st.Tasks[i].ExitStatus, "snapshot %s of %s", name, v.ServiceID)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	base3 := snapshotSeen()
	for _, v := range fleet {
		volid := volOf[rowIDs[v.ServiceID][1]] // the protected one, made under the old product
		p := pvectlProc(t, dir, []string{nextNow()}, "backup", "restore", v.ServiceID, volid, "--yes")
		require.Equal(t, 0, p.exitCode(), "backup restore: %s%s", p.stdout.String(), p.stderr.String())
		require.Contains(t, p.stdout.String(), "status restore", v.ServiceID)
	}
	restoreLabels := func() []string {
		var out []string
		for _, v := range listVMs(t, dir) {
			if _, ok := vmid[v.ServiceID]; ok && v.Status != "ready" {
				out = append(out, v.Status)
			}
		}
		return out
	}
	before := maps.Clone(killedIn)
	round("restore", 150, killMost, restoreLabels, allReady)
	restoreKills := map[string]int{}
	for k, n := range killedIn {
		if d := n - before[k]; d > 0 {
			restoreKills[k] = d
		}
	}

	st = sim.state(t)
	tasks3 := roundTasks(st, base3)
	pve := map[int]pvesim.VMState{}
	for _, pv := range st.VMs {
		pve[pv.VMID] = pv
	}
	cores := map[string]string{"small": "2", "big": "4", "web": "1", "xl": "4"}
	memory := map[string]string{"small": "2048", "big": "4096", "web": "1024", "xl": "8192"}
	for _, v := range listVMs(t, dir) {
		id, ok := vmid[v.ServiceID]
		if !ok {
			continue
		}
		pv := pve[id]
		ctxt := fmt.Sprintf("restore: %s (VMID %d, product %s; tasks %s)", v.ServiceID, id, v.Product, taskTypes(tasks3[id]))
		require.Equal(t, "ready", v.Status, ctxt)
		require.False(t, v.Held, ctxt)
		require.Equal(t, product[v.ServiceID], v.Product, ctxt)
		require.Equal(t, "running", pv.Status, ctxt)
		require.Empty(t, pv.Lock, ctxt)
		require.Equal(t, cores[v.Product], pv.Config["cores"], "%s: cores", ctxt)
		require.Equal(t, memory[v.Product], pv.Config["memory"], "%s: memory", ctxt)
		_, hasExtra := pv.Config["scsi1"]
		require.Equal(t, v.Product != "small", hasExtra, "%s: additional disk", ctxt)
		m := macRE.FindStringSubmatch(pv.Config["net0"])
		require.NotNil(t, m, "%s: net0 %q", ctxt, pv.Config["net0"])
		require.Equal(t, mac[v.ServiceID], m[1], "%s: MAC", ctxt)
		require.Empty(t, pv.Snapshots, "%s: snapshots left", ctxt)
		referenced := map[string]bool{}
		for k, val := range pv.Config {
			require.False(t, strings.HasPrefix(k, "unused"), "%s: leaked disk %s", ctxt, k)
			volid, _ := proxmox.ParsePropertyString(val)
			referenced[volid] = true
		}
		vols, err := pveAPI.StorageContent(ctx, pv.Node, "local-lvm", proxmox.ContentFilter{Content: "images", VMID: id})
		require.NoError(t, err)
		for _, vol := range vols {
			require.True(t, referenced[vol.VolID], "%s: volume %s on local-lvm is in no config key (leaked): %v", ctxt, vol.VolID, pv.Config)
		}
		restores := 0
		for _, tk := range tasks3[id] {
			if tk.Type == "qmrestore" {
				restores++
				require.Equal(t, "OK", tk.ExitStatus, "%s: qmrestore %s", ctxt, tk.UPID)
			}
		}
		require.Equal(t, 1, restores, "%s: qmrestore tasks for one request", ctxt)
	}

	t.Logf("backups: %d kills; kills by state: %v (restore round: %v); total %s",
		totalKills, killedIn, restoreKills, time.Since(began).Round(time.Millisecond))
	require.GreaterOrEqual(t, killedIn["backup queued"], 1, "kills while backups were queued: %v", killedIn)
	require.GreaterOrEqual(t, killedIn["backup running"]+killedIn["backup running (no UPID)"], 3, "kills while vzdumps ran: %v", killedIn)
	require.GreaterOrEqual(t, killedIn["backup rotating"]+killedIn["backup rotating (no task)"], 1, "kills while rotating: %v", killedIn)
	require.GreaterOrEqual(t, killedIn["slot not queued"], 1, "kills before the slot was queued: %v", killedIn)
	for _, st := range []string{"restore", "restore_stopped", "restore_snapshots_removed"} {
		require.GreaterOrEqual(t, restoreKills[st], 1, "kills while VMs were in %s: %v", st, restoreKills)
	}
	cp := 0
	for st, n := range restoreKills {
		if st == "change_package" || strings.HasPrefix(st, "cp_") {
			cp += n
		}
	}
	require.GreaterOrEqual(t, cp, 2, "kills during the re-apply: %v", restoreKills)

	var rejected []pvesim.Request
	sim.get(t, "/requests?rejected=1", &rejected)
	require.Empty(t, rejected, "requests rejected by schema validation")
	ic, err := s.Pragma(ctx, "integrity_check")
	require.NoError(t, err)
	require.Equal(t, "ok", ic)
}
