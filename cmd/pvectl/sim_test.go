package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/rogpeppe/go-internal/testscript"
)

// Testscript commands that run a pvesim inside the test process, so its
// state (and manual clock) survives across exec lines:
//
//	pvesim start                       start a simulator; sets PVE_URL, PVE_TOKEN_ID, PVE_TOKEN_SECRET
//	pvesim advance DURATION            advance the simulator's clock
//	pvesim fail-next ENDPOINT N STATUS MESSAGE...
//	pvesim fail-task TYPE EXITSTATUS...
//	pvesim stop-vm VMID                stop the VM behind pvectl's back (PVE GUI) and let the task finish
//	pvesim never-running VMID
//	pvesim clear-faults
//	pvesim vms N                       require N VMs (templates excluded)
//	pvesim no-rejections               require that no request failed schema validation
//	pvesim snapshot VMID NAME          take a snapshot through the PVE API (task finished)
//	pvesim destroy VMID NODE           DELETE the VM through the PVE API behind pvectl's back
//	pvesim lock VMID [LOCK]            leave a config lock no task removes; no LOCK: unlock
//	pvesim tasks [TYPE]                print TYPE ID STATUS EXITSTATUS per task
//	pvesim volumes NODE STORAGE        print a storage's volume ids
//	pvesim delete-volume NODE STORAGE VOLID|notes=TEXT  delete a volume (the backup whose notes contain TEXT) behind pvectl's back
//	pvesim api METHOD PATH [K=V...]    a PVE API call as an admin (GUI, qm) behind pvectl's back; prints the reply
//	pvesim control METHOD PATH [JSON]  call pvesim's control API (/_sim/…), print the reply
//	pvesim revoke-priv PRIV...         pvectl's token holds every privilege but these (privilege separation)
//	pvesim restore-privs               pvectl's token holds every privilege again
//	subst IN OUT                       copy IN to OUT expanding $VARS
//	ticks N [STEP]                     N x (advance the simulator and PVECTL_NOW by STEP, default 1m;
//	                                   pvectl run-task process_vms, or the pvectl arguments in
//	                                   $TICKS_RUN, e.g. env TICKS_RUN=tick), output appended to ticks.out
var sims sync.Map  // work dir -> *pvesim.Sim
var downs sync.Map // work dir -> *atomic.Bool (pvesim down/up)

func simFor(ts *testscript.TestScript) *pvesim.Sim {
	v, ok := sims.Load(ts.Getenv("WORK"))
	if !ok {
		ts.Fatalf("pvesim not started")
	}
	return v.(*pvesim.Sim)
}

func pvesimCmd(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) == 0 {
		ts.Fatalf("usage: pvesim start|advance|fail-next|fail-task|never-running|clear-faults|vms|no-rejections")
	}
	switch args[0] {
	case "start":
		c := pvesim.DefaultCluster()
		if len(args) > 1 {
			var err error
			c, err = pvesim.LoadCluster(ts.MkAbs(args[1]))
			ts.Check(err)
		}
		// The simulator's clock starts at pvectl's (PVECTL_NOW) and the
		// ticks command advances both together.
		start, err := time.Parse(time.RFC3339, ts.Getenv("PVECTL_NOW"))
		ts.Check(err)
		sim, err := pvesim.New(c, pvesim.WithManualClock(start))
		ts.Check(err)
		// pvesim down/up: while down, every connection is closed without an
		// answer (pveproxy stopped, the host rebooting, a network cut).
		down := &atomic.Bool{}
		downs.Store(ts.Getenv("WORK"), down)
		ts.Defer(func() { downs.Delete(ts.Getenv("WORK")) })
		h := sim.Handler()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() {
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						_ = c.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			}
			h.ServeHTTP(w, r)
		}))
		ts.Defer(srv.Close)
		sims.Store(ts.Getenv("WORK"), sim)
		ts.Defer(func() { sims.Delete(ts.Getenv("WORK")) })
		ts.Setenv("PVE_URL", srv.URL)
		ts.Setenv("PVE_TOKEN_ID", pvesim.DefaultTokenID)
		ts.Setenv("PVE_TOKEN_SECRET", pvesim.DefaultSecret)
	case "advance":
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		simFor(ts).Advance(d)
	case "fail-next":
		n, err := strconv.Atoi(args[2])
		ts.Check(err)
		status, err := strconv.Atoi(args[3])
		ts.Check(err)
		simFor(ts).FailNext(pvesim.FailNext{Endpoint: args[1], Count: n, Status: status, Message: strings.Join(args[4:], " ")})
	case "fail-task":
		// pvesim fail-task [-count=N] TYPE EXITSTATUS...: the next (N) tasks
		// of TYPE fail with EXITSTATUS.
		count := 1
		if n, ok := strings.CutPrefix(args[1], "-count="); ok {
			c, err := strconv.Atoi(n)
			ts.Check(err)
			count, args = c, args[1:]
		}
		simFor(ts).FailTask(pvesim.TaskFault{Type: args[1], ExitStatus: strings.Join(args[2:], " "), Count: count})
	case "down", "up":
		// pvesim down|up: PVE's API stops answering (connections closed) or
		// answers again.
		v, ok := downs.Load(ts.Getenv("WORK"))
		if !ok {
			ts.Fatalf("pvesim not started")
		}
		v.(*atomic.Bool).Store(args[0] == "down")
	case "hang-task":
		// pvesim hang-task TYPE: the next task of TYPE never finishes.
		simFor(ts).FailTask(pvesim.TaskFault{Type: args[1], Hang: true, Count: 1})
	case "start-vm":
		// pvesim start-vm VMID: start the VM behind pvectl's back (PVE GUI).
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		ts.Check(simFor(ts).StartOutOfBand(id))
	case "stop-vm":
		// pvesim stop-vm VMID: stop the VM behind pvectl's back (the
		// customer in the PVE GUI: POST status/stop) and let the qmstop
		// task finish, advancing the simulator's clock second by second.
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		sim := simFor(ts)
		st, ok := sim.VM(id)
		if !ok {
			ts.Fatalf("pvesim has no VM %d", id)
		}
		task, err := simAdapter(ts).Stop(context.Background(), proxmox.VMRef{Node: st.Node, VMID: id}, proxmox.StopOptions{})
		ts.Check(err)
		for i := 0; i < 60; i++ {
			if t, _ := sim.Task(task.UPID); t.Status == "stopped" {
				break
			}
			sim.Advance(time.Second)
		}
		requireTaskOK(ts, sim, task.UPID)
	case "never-running":
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		simFor(ts).SetNeverRunning(id, true)
	case "clear-faults":
		simFor(ts).ClearFaults()
	case "vms":
		want, err := strconv.Atoi(args[1])
		ts.Check(err)
		n := 0
		for _, vm := range simFor(ts).VMs() {
			if !vm.Template {
				n++
			}
		}
		if (n == want) == neg {
			ts.Fatalf("pvesim has %d VMs, want %d", n, want)
		}
	case "vm":
		// pvesim vm VMID: print the VM's state (config, firewall, IP sets) as JSON.
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		st, ok := simFor(ts).VM(id)
		if ok == neg {
			ts.Fatalf("pvesim VM %d exists: %v", id, ok)
		}
		if ok {
			b, _ := json.MarshalIndent(st, "", "  ")
			ts.Stdout().Write(append(b, '\n'))
		}
	case "vm-of":
		// pvesim vm-of SERVICE: print the state of the VM whose notes carry
		// pvectl's marker for that service id.
		for _, st := range simFor(ts).VMs() {
			for _, line := range strings.Split(st.Config["description"], "\n") {
				if line == "pvectl service="+args[1] {
					b, _ := json.MarshalIndent(st, "", "  ")
					ts.Stdout().Write(append(b, '\n'))
					return
				}
			}
		}
		ts.Fatalf("pvesim has no VM marked for service %s", args[1])
	case "traffic", "traffic-match":
		// pvesim traffic SERVICE IN OUT: the VM gets SetTrafficProfile(IN, OUT) (bytes/s).
		// pvesim traffic-match SERVICE FILE: FILE is `pvectl stats SERVICE --csv`; its period
		// total (in + out) must match what pvesim generated from the period start to now to
		// within one RRD step (60 s) at the profile's peak rate.
		statsSimCmd(ts, args)
	case "cipassword":
		// [!] pvesim cipassword VMID PW: the VM's cloud-init password is PW
		// (PVE stores it hashed and never shows it; this checks the hash).
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		if simFor(ts).CheckCIPassword(id, args[2]) == neg {
			ts.Fatalf("pvesim VM %d cloud-init password is %q: %v", id, args[2], !neg)
		}
	case "mac":
		// pvesim mac VMID: print net0's MAC address.
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		st, ok := simFor(ts).VM(id)
		if !ok {
			ts.Fatalf("pvesim has no VM %d", id)
		}
		first, _, _ := strings.Cut(st.Config["net0"], ",")
		_, mac, _ := strings.Cut(first, "=")
		fmt.Fprintln(ts.Stdout(), mac)
	case "vzdump":
		// pvesim vzdump VMID NODE: back the VM up to storage local and finish the task.
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		pve, err := proxmox.New(proxmox.Options{URL: ts.Getenv("PVE_URL"), TokenID: ts.Getenv("PVE_TOKEN_ID"), TokenSecret: ts.Getenv("PVE_TOKEN_SECRET")})
		ts.Check(err)
		_, err = pve.Backup(context.Background(), proxmox.BackupRequest{VM: proxmox.VMRef{Node: args[2], VMID: id}, Storage: "local"})
		ts.Check(err)
		simFor(ts).Advance(time.Minute)
	case "no-rejections":
		if r := simFor(ts).Rejected(); len(r) > 0 {
			b, _ := json.MarshalIndent(r, "", "  ")
			ts.Fatalf("pvesim rejected %d request(s):\n%s", len(r), b)
		}
	case "snapshot":
		// pvesim snapshot VMID NAME: take a snapshot of the VM (through the
		// PVE API, as an admin would) and let the qmsnapshot task finish.
		if len(args) != 3 {
			ts.Fatalf("usage: pvesim snapshot VMID NAME")
		}
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		sim := simFor(ts)
		st, ok := sim.VM(id)
		if !ok {
			ts.Fatalf("pvesim has no VM %d", id)
		}
		task, err := simAdapter(ts).CreateSnapshot(context.Background(), proxmox.VMRef{Node: st.Node, VMID: id}, proxmox.SnapshotRequest{Name: args[2]})
		ts.Check(err)
		sim.Advance(time.Minute)
		requireTaskOK(ts, sim, task.UPID)
	case "destroy":
		// pvesim destroy VMID NODE: delete the VM behind pvectl's back
		// (DELETE with purge, as an admin in the GUI) and let the task finish.
		if len(args) != 3 {
			ts.Fatalf("usage: pvesim destroy VMID NODE")
		}
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		sim := simFor(ts)
		task, err := simAdapter(ts).Delete(context.Background(), proxmox.VMRef{Node: args[2], VMID: id}, proxmox.DeleteOptions{Purge: true, DestroyUnreferencedDisks: true})
		ts.Check(err)
		sim.Advance(time.Minute)
		requireTaskOK(ts, sim, task.UPID)
	case "lock":
		// pvesim lock VMID [LOCK]: set a config lock that no task removes (e.g.
		// "backup" of a vzdump that hangs); without LOCK: remove it (qm unlock).
		id, err := strconv.Atoi(args[1])
		ts.Check(err)
		lock := ""
		if len(args) > 2 {
			lock = args[2]
		}
		ts.Check(simFor(ts).LeaveLock(id, lock))
	case "tasks":
		// pvesim tasks [TYPE]: print one line per task (of that type):
		// TYPE ID STATUS EXITSTATUS.
		out := ts.Stdout() // also when nothing matches: stdout is then empty
		for _, t := range simFor(ts).Tasks() {
			if len(args) > 1 && t.Type != args[1] {
				continue
			}
			fmt.Fprintf(out, "%s %s %s %s\n", t.Type, t.ID, t.Status, t.ExitStatus)
		}
	case "volumes":
		// pvesim volumes NODE STORAGE: print the storage's volume ids.
		out := ts.Stdout()
		for _, v := range simFor(ts).StorageContent(args[1], args[2]) {
			fmt.Fprintln(out, v.VolID)
		}
	case "delete-volume":
		// pvesim delete-volume NODE STORAGE VOLID: delete a volume (a backup
		// archive) behind pvectl's back, as an admin in the GUI, and let the
		// imgdel task finish.
		if len(args) != 4 {
			ts.Fatalf("usage: pvesim delete-volume NODE STORAGE VOLID")
		}
		sim := simFor(ts)
		volid := args[3]
		if text, ok := strings.CutPrefix(volid, "notes="); ok {
			// notes=TEXT: the one backup whose notes contain TEXT.
			volid = ""
			for _, v := range sim.StorageContent(args[1], args[2]) {
				if v.Content == "backup" && strings.Contains(v.Notes, text) {
					if volid != "" {
						ts.Fatalf("more than one backup has %q in its notes", text)
					}
					volid = v.VolID
				}
			}
			if volid == "" {
				ts.Fatalf("no backup on %s/%s has %q in its notes", args[1], args[2], text)
			}
		}
		task, err := simAdapter(ts).DeleteVolume(context.Background(), args[1], args[2], volid)
		ts.Check(err)
		if !task.IsZero() {
			sim.Advance(time.Minute)
			requireTaskOK(ts, sim, task.UPID)
		}
	case "api":
		// pvesim api METHOD PATH [KEY=VALUE...]: a PVE API call as an admin
		// would make it (the GUI, qm, pvesh) behind pvectl's back, through
		// the simulator's schema check; prints the reply's data. A task it
		// starts is left for the next advance.
		if len(args) < 3 {
			ts.Fatalf("usage: pvesim api METHOD PATH [KEY=VALUE...]")
		}
		form := url.Values{}
		for _, kv := range args[3:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				ts.Fatalf("pvesim api: %q is not KEY=VALUE", kv)
			}
			form.Add(k, v)
		}
		target, body := "/api2/json"+args[2], ""
		if args[1] == http.MethodGet || args[1] == http.MethodDelete {
			if len(form) > 0 {
				target += "?" + form.Encode()
			}
		} else {
			body = form.Encode()
		}
		req := httptest.NewRequest(args[1], target, strings.NewReader(body))
		req.Header.Set("Authorization", "PVEAPIToken="+ts.Getenv("PVE_TOKEN_ID")+"="+ts.Getenv("PVE_TOKEN_SECRET"))
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		simFor(ts).Handler().ServeHTTP(rec, req)
		ts.Stdout().Write(rec.Body.Bytes())
		if (rec.Code >= 400) != neg {
			ts.Fatalf("pvesim api %s %s: %d %s", args[1], args[2], rec.Code, rec.Body.String())
		}
	case "revoke-priv", "restore-privs":
		var grants []pvesim.Grant
		if args[0] == "revoke-priv" {
			if len(args) < 2 {
				ts.Fatalf("usage: pvesim revoke-priv PRIV...")
			}
			var keep []string
			for _, p := range pvesim.Privileges {
				if !slices.Contains(args[1:], p) {
					keep = append(keep, p)
				}
			}
			if len(keep) != len(pvesim.Privileges)-len(args[1:]) {
				ts.Fatalf("unknown privilege in %v", args[1:])
			}
			grants = []pvesim.Grant{{Path: "/", Privs: keep}}
		}
		if !simFor(ts).SetTokenGrants(pvesim.DefaultTokenID, grants) {
			ts.Fatalf("no token %s", pvesim.DefaultTokenID)
		}
	case "control":
		// pvesim control METHOD PATH [JSON]: e.g. POST /_sim/access/acl '{…}'
		// to seed users, pools and ACL entries, GET /_sim/access to look.
		if len(args) < 3 {
			ts.Fatalf("usage: pvesim control METHOD PATH [JSON]")
		}
		rec := httptest.NewRecorder()
		simFor(ts).Handler().ServeHTTP(rec, httptest.NewRequest(args[1], args[2], strings.NewReader(strings.Join(args[3:], " "))))
		ts.Stdout().Write(rec.Body.Bytes())
		if (rec.Code >= 400) != neg {
			ts.Fatalf("pvesim control %s %s: %d %s", args[1], args[2], rec.Code, rec.Body.String())
		}
	default:
		ts.Fatalf("unknown pvesim command %q", args[0])
	}
}

func substCmd(ts *testscript.TestScript, neg bool, args []string) {
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	out := os.Expand(string(b), ts.Getenv)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(out), 0o600))
}

func ticksCmd(ts *testscript.TestScript, neg bool, args []string) {
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	step := time.Minute
	if len(args) > 1 {
		step, err = time.ParseDuration(args[1])
		ts.Check(err)
	}
	sim := simFor(ts)
	f, err := os.OpenFile(filepath.Join(ts.Getenv("WORK"), "ticks.out"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	ts.Check(err)
	defer f.Close()
	for range n {
		now, err := time.Parse(time.RFC3339, ts.Getenv("PVECTL_NOW"))
		ts.Check(err)
		now = now.Add(step)
		ts.Setenv("PVECTL_NOW", now.Format(time.RFC3339))
		sim.Advance(step)
		run := []string{"run-task", "process_vms"}
		if v := ts.Getenv("TICKS_RUN"); v != "" {
			run = strings.Fields(v)
		}
		err = ts.Exec("pvectl", run...)
		fmt.Fprintf(f, "## tick %s\n%s%s", now.Format(time.RFC3339), ts.ReadFile("stdout"), ts.ReadFile("stderr"))
		// "! ticks": every tick must fail (a task failed as a whole).
		if err != nil && !neg {
			ts.Fatalf("tick at %s failed: %v", now, err)
		}
		if err == nil && neg {
			ts.Fatalf("tick at %s succeeded", now)
		}
	}
}

// simAdapter is a PVE client on the test's simulator, for commands that act
// on PVE as an admin would (not as pvectl).
func simAdapter(ts *testscript.TestScript) *proxmox.Adapter {
	pve, err := proxmox.New(proxmox.Options{URL: ts.Getenv("PVE_URL"), TokenID: ts.Getenv("PVE_TOKEN_ID"), TokenSecret: ts.Getenv("PVE_TOKEN_SECRET")})
	ts.Check(err)
	return pve
}

// requireTaskOK fails the script unless the task has finished OK.
func requireTaskOK(ts *testscript.TestScript, sim *pvesim.Sim, upid string) {
	t, ok := sim.Task(upid)
	if !ok || t.Status != "stopped" || t.ExitStatus != "OK" {
		ts.Fatalf("task %s did not finish OK: %+v", upid, t)
	}
}
