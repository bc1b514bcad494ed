package states_test

// Change-package scenarios: the VM is stopped (gracefully first), its disks
// are changed and it runs again with the new product. Address changes are in
// change_package_ips_test.go.

import (
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/providers/proxmox"
	"github.com/pvectl/pvectl/providers/proxmox/pvesim"
	"github.com/pvectl/pvectl/states"
	"github.com/stretchr/testify/require"
)

// A VM the customer had shut down before a change-package: the stop step
// sends nothing and says so, and the change still ends with the VM running
// (the product is applied at that boot).
func TestChangePackageOfStoppedVM(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("s1", "small")
	ref := proxmox.VMRef{Node: vm.Node, VMID: vm.VMID}
	task, err := r.pve.Stop(r.ctx, ref, proxmox.StopOptions{})
	require.NoError(t, err)
	r.sim.Advance(time.Minute)
	st, err := r.pve.TaskStatus(r.ctx, task)
	require.NoError(t, err)
	require.NoError(t, st.Err())

	before := len(r.sim.Requests())
	r.request(vm, states.ChangePackage, "big")
	out := r.run(vm.ID, states.Ready, 30, 20*time.Second)
	require.Equal(t, string(states.Ready), r.get(vm.ID).Status, out)
	require.Contains(t, out, "cp_update_ip → cp_stop  skip (VM already stopped)")
	for _, q := range r.sim.Requests()[before:] {
		require.NotContains(t, q.Endpoint, "/status/shutdown", "no shutdown sent to a stopped VM")
		require.NotContains(t, q.Endpoint, "/status/stop", "no stop sent to a stopped VM")
	}
	m, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "running", m.Status)
	require.Equal(t, "4096", m.Config["memory"])
}

// unusedVolumes lists the unusedN keys of a VM's config: volumes detached
// from the VM but still allocated on the storage.
func unusedVolumes(st pvesim.VMState) []string {
	var out []string
	for k, v := range st.Config {
		if strings.HasPrefix(k, "unused") {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// A change-package to a product without the additional disk removes that
// disk in two calls: a detach (the volume becomes unusedN) and a destroy of
// the unusedN volume. When the destroy fails once (a lock timeout), the
// retry still knows the detached volume and destroys it: nothing is left as
// unusedN or on the storage, and the system disk stays.
func TestChangePackageDestroysTheRemovedDisk(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("a1", "big")
	st, _ := r.sim.VM(vm.VMID)
	require.Contains(t, st.Config["scsi1"], "serial=pvectl-additional")
	extraVol, _, _ := strings.Cut(st.Config["scsi1"], ",") // local-lvm:vm-1000-disk-N

	// The destroy of the detached volume hits a (retryable) lock timeout once.
	r.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/config", Count: 1, Status: 500,
		Message: "can't lock file '/var/lock/qemu-server/lock-1000.conf' - got timeout"})
	r.request(vm, states.ChangePackage, "small")
	r.until(vm.ID, states.Ready, 60)

	st, _ = r.sim.VM(vm.VMID)
	var vols []string
	for _, v := range r.sim.StorageContent("pve1", "local-lvm") {
		if v.VMID == vm.VMID {
			vols = append(vols, v.VolID)
		}
	}
	require.Empty(t, unusedVolumes(st), "the removed additional disk is destroyed, not left as unusedN")
	require.NotContains(t, vols, extraVol, "the removed additional disk's volume is gone from the storage")
	require.NotEmpty(t, vols, "the system disk is still there")
}

// The detached volume is kept in the VM's record (detached_volume), not only
// in the step's memory, which a status change clears. When its destroy is
// refused for good, the VM is held at the failed step and started again
// meanwhile; after `vm retry` the step stops it and destroys the volume.
func TestChangePackageDestroysTheRemovedDiskAfterVMRetry(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("a2", "big")
	r.request(vm, states.ChangePackage, "small")

	injected := false
	for range 60 {
		r.tick(20 * time.Second)
		cur := r.get(vm.ID)
		if cur.Status == string(states.CPSystemDiskBandwidth) && cur.DetachedVolume != "" {
			// The destroy of the detached volume is refused for good once.
			r.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/config", Count: 1, Status: 403,
				Message: "Permission check failed (/vms/1000, VM.Config.Disk)"})
			injected = true
			break
		}
	}
	require.True(t, injected, "never saw the detach")
	r.tick(20 * time.Second)
	cur := r.get(vm.ID)
	require.Equal(t, string(states.CPSystemDiskBandwidth), cur.Status, "held at the failed step")
	require.True(t, cur.Held)
	r.tick(20 * time.Second) // the start task finishes; the held VM is not touched
	require.Equal(t, cur.Version, r.get(vm.ID).Version)
	st, _ := r.sim.VM(vm.VMID)
	require.Equal(t, "running", st.Status, "started again while it waits for an admin")

	// The admin fixes the permission and retries.
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, r.clk.Now()))
	r.until(vm.ID, states.Ready, 60)

	st, _ = r.sim.VM(vm.VMID)
	require.Empty(t, unusedVolumes(st), "the removed additional disk is destroyed after the rewind and vm retry")
}

// firstPowerTask is the type of the first shutdown or stop task PVE received
// for VMID 1000 at or after since ("" if none).
func (r *rig) firstPowerTask(since time.Time) string {
	for _, task := range r.sim.Tasks() {
		if task.ID == "1000" && !task.Start.Before(since) && (task.Type == "qmshutdown" || task.Type == "qmstop") {
			return task.Type
		}
	}
	return ""
}

// stop_timeout is measured from the first shutdown pvectl sends, not from
// when the VM entered the stop step: when the node is unreachable for the
// first attempts (595, backing off about 7 minutes), the first power task
// is still a graceful shutdown.
func TestChangePackageTriesGracefulShutdownFirst(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("s1", "small")
	r.request(vm, states.ChangePackage, "big")
	r.tick(20 * time.Second)
	require.Equal(t, string(states.CPUpdateIP), r.get(vm.ID).Status)
	cpStarted := r.clk.Now()

	// The node is unreachable for three calls (595), which backs off ~7 minutes.
	r.sim.FailNext(pvesim.FailNext{Endpoint: "GET /nodes/{node}/qemu/{vmid}/status/current", Count: 3 * proxmox.ReadAttempts, Status: 595})
	for range 30 {
		r.tick(time.Minute)
		if r.get(vm.ID).Status != string(states.CPUpdateIP) {
			break
		}
	}
	require.Equal(t, "qmshutdown", r.firstPowerTask(cpStarted.Add(time.Nanosecond)), "the guest is asked to shut down before it is powered off")
}

// `vm retry` starts the stop over: a change-package held at the stop step
// because the forced stop was refused (403), and released hours later,
// first asks the guest to shut down again instead of treating the hours-old
// shutdown as timed out.
func TestChangePackageTriesGracefulShutdownFirstAfterVMRetry(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("g1", "small")

	r.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
	r.request(vm, states.ChangePackage, "big")
	for range 10 {
		r.tick(20 * time.Second)
		if strings.Contains(r.get(vm.ID).StepData, "shutdown_at") {
			break
		}
	}
	require.Contains(t, r.get(vm.ID).StepData, "shutdown_at")
	r.sim.FailNext(pvesim.FailNext{Endpoint: "POST /nodes/{node}/qemu/{vmid}/status/stop", Count: 1, Status: 403,
		Message: "Permission check failed (/vms/1000, VM.PowerMgmt)"})
	for range 30 {
		r.tick(20 * time.Second)
		if r.get(vm.ID).Held {
			break
		}
	}
	cur := r.get(vm.ID)
	require.True(t, cur.Held, "the refused forced stop holds the VM (status %s, error %q)", cur.Status, cur.LastError)
	require.Equal(t, string(states.CPUpdateIP), cur.Status)

	// Hours later the admin fixes the permission and retries.
	r.tick(3 * time.Hour)
	released := r.clk.Now()
	require.NoError(t, r.st.VMRelease(r.ctx, cur.ID, cur.Status, cur.Version, r.clk.Now()))
	r.tick(20 * time.Second)
	require.Equal(t, "qmshutdown", r.firstPowerTask(released), "after vm retry the guest is asked to shut down before it is powered off")
}

// A graceful shutdown sent while the host clock ran a year ahead records its
// start in the future. Once the clock is right again, the stop timer starts
// over from now: the forced stop follows stop_timeout later, not a year later.
func TestStopTimerWrittenInTheFutureRestartsFromNow(t *testing.T) {
	t.Parallel()
	r := newRig(t, false)
	vm := r.deployed("g1", "small")
	right := r.clk.Now()

	// The guest ignores the ACPI request.
	r.sim.FailTask(pvesim.TaskFault{Type: "qmshutdown", ExitStatus: "VM quit/powerdown failed - got timeout", Count: 1})
	r.request(vm, states.ChangePackage, "big")
	r.clk.T = right.Add(365 * 24 * time.Hour) // the engine's clock only; PVE's is right
	for range 10 {
		r.clk.T = r.clk.T.Add(20 * time.Second)
		r.sim.Advance(20 * time.Second)
		_, err := r.e.ProcessVMs(r.ctx)
		require.NoError(t, err)
		if strings.Contains(r.get(vm.ID).StepData, "shutdown_at") {
			break
		}
	}
	require.Contains(t, r.get(vm.ID).StepData, "shutdown_at", "the shutdown was sent while the clock ran ahead")

	// The clock is set right again.
	r.clk.T = right.Add(time.Minute)
	fixed := r.clk.Now()
	var stopAt time.Time
	for range 30 {
		r.tick(20 * time.Second)
		for _, task := range r.sim.Tasks() {
			if task.ID == "1000" && task.Type == "qmstop" && stopAt.IsZero() {
				stopAt = r.clk.Now()
			}
		}
		if !stopAt.IsZero() {
			break
		}
	}
	require.False(t, stopAt.IsZero(), "no forced stop within 10 minutes of the clock being set right")
	took := stopAt.Sub(fixed)
	timeout := r.cfg.Tasks.ProcessVMs.StopTimeout.D()
	require.GreaterOrEqual(t, took, timeout, "graceful shutdown given its full stop_timeout from now")
	require.LessOrEqual(t, took, timeout+2*time.Minute, "forced stop soon after stop_timeout")
}
