// Package states holds pvectl's pipeline tables: the typed state names, the
// step contract every step function keeps, and the deploy, change-package and
// terminate tables built as looplab/fsm state machines.
//
// A state always names the last completed step, never the current action:
// a VM in SetIP has its addresses allocated and the next action is the clone.
package states

import "sort"

// State is the last completed step of a VM's pipeline.
type State string

// Deploy pipeline states, in order.
const (
	// Creation: the record exists; next, reserve a VMID and allocate IPs.
	Creation State = "creation"
	// SetIP: VMID and IPs are reserved in the store; next, clone the template.
	SetIP State = "set_ip"
	// Clone: the clone task finished; next, publish DNS records.
	Clone State = "clone"
	// SetDNS: DNS records were attempted; next, migrate to the target node.
	SetDNS State = "set_dns"
	// Migrated: the VM is on its target node; next, CPU and RAM.
	Migrated State = "migrated"
	// SetCPURAM: cores, sockets and memory are set; next, grow the system disk.
	SetCPURAM State = "set_cpu_ram"
	// SetSystemDiskSize: the system disk has its size; next, its I/O limits.
	SetSystemDiskSize State = "set_system_disk_size"
	// SetSystemDiskBandwidth: system disk limits set; next, the additional disk.
	SetSystemDiskBandwidth State = "set_system_disk_bandwidth"
	// SetCreatedAdditionalDisk: the additional disk exists (or none is wanted).
	SetCreatedAdditionalDisk State = "set_created_additional_disk"
	// SetAdditionalDiskSize: the additional disk has its size.
	SetAdditionalDiskSize State = "set_additional_disk_size"
	// SetAdditionalDiskBandwidth: additional disk limits set; next, the NIC.
	SetAdditionalDiskBandwidth State = "set_additional_disk_bandwidth"
	// SetNetwork: the NIC is configured; next, the firewall.
	SetNetwork State = "set_network"
	// SetFirewall: firewall options and IP set are in place; next, cloud-init.
	SetFirewall State = "set_firewall"
	// SetCloudinit: cloud-init keys are set; next, start the VM.
	SetCloudinit State = "set_cloudinit"
	// Starting: the start was requested; next, wait for the guest to run.
	Starting State = "starting"
	// Ready is final: the VM runs its product. The cron leaves it alone.
	Ready State = "ready"
)

// Change-package pipeline states, in order (it ends in Ready).
const (
	// ChangePackage: a new product was requested; next, update IPs, IP set and DNS.
	ChangePackage State = "change_package"
	// CPUpdateIP: addresses, IP set and DNS match the new product; next, stop.
	CPUpdateIP State = "cp_update_ip"
	// CPStop: the VM is stopped; next, CPU and RAM.
	CPStop State = "cp_stop"
	// CPCPURAM: cores, sockets and memory match the new product.
	CPCPURAM State = "cp_cpu_ram"
	// CPSystemDiskSize: the system disk has the new size (never shrunk).
	CPSystemDiskSize State = "cp_system_disk_size"
	// CPSystemDiskBandwidth: the system disk has the new I/O limits.
	CPSystemDiskBandwidth State = "cp_system_disk_bandwidth"
	// CPAdditionalDisk: the additional disk exists, or was removed, as the product says.
	CPAdditionalDisk State = "cp_additional_disk"
	// CPAdditionalDiskSize: the additional disk has the new size (never shrunk).
	CPAdditionalDiskSize State = "cp_additional_disk_size"
	// CPAdditionalDiskBandwidth: the additional disk has the new I/O limits.
	CPAdditionalDiskBandwidth State = "cp_additional_disk_bandwidth"
	// CPNetwork: the NIC matches the new product.
	CPNetwork State = "cp_network"
	// CPFirewall: firewall options and IP set match the new product.
	CPFirewall State = "cp_firewall"
	// CPStart: the start was requested; next, wait for the guest to run.
	CPStart State = "cp_start"
)

// Terminate pipeline states, in order.
const (
	// Terminate: termination was requested; next, stop the VM.
	Terminate State = "terminate"
	// TerminateStopped: the VM is stopped (or stopping failed and purge will reap it).
	TerminateStopped State = "terminate_stopped"
	// TerminateBackupsRemoved: backups were removed, best effort.
	TerminateBackupsRemoved State = "terminate_backups_removed"
	// TerminateDNSRemoved: DNS records were removed, best effort.
	TerminateDNSRemoved State = "terminate_dns_removed"
	// TerminateDeleted: PVE confirmed the VM is gone; next, release IPs and VMID.
	TerminateDeleted State = "terminate_deleted"
	// Remove is final: the VM is gone and its IPs and VMID are released.
	Remove State = "remove"
	// ErrorTerminate is final until an admin acts: the DELETE failed, the
	// record and its IPs stay allocated, the cron never touches it.
	ErrorTerminate State = "error_terminate"
)

// Other entry points.
const (
	// SetDNSRecords: a full DNS delete and recreate is queued; then Ready.
	SetDNSRecords State = "set_dns_records"
	// Reinstall: destroy the VM in PVE keeping VMID, IPs and MAC; then SetIP.
	Reinstall State = "reinstall"
)

// Suspend and unsuspend states (billing: pvectl vm suspend|unsuspend).
const (
	// Suspend: a suspend was requested; next, stop the VM (graceful, then forced).
	Suspend State = "suspend"
	// SuspendStopped: the VM is stopped; next, onboot=0 and the suspended tag.
	SuspendStopped State = "suspend_stopped"
	// Suspended is final until unsuspend or terminate: stopped, onboot=0,
	// tagged; each process_vms pass stops it again if found running.
	Suspended State = "suspended"
	// Unsuspend: an unsuspend was requested; next, restore onboot and tags.
	Unsuspend State = "unsuspend"
	// UnsuspendRestored: onboot and tags are as before the suspend; next, start.
	UnsuspendRestored State = "unsuspend_restored"
)

// Migrate states (pvectl vm migrate VM --node N [--online]).
const (
	// Migrate: a migration was requested (the node asked for and --online
	// are in the record); next, choose the target and migrate the VM.
	Migrate State = "migrate"
	// MigrateMoved: the VM is on its new node (the record's node too);
	// next, verify its IP set and firewall options.
	MigrateMoved State = "migrate_moved"
)

// Hostname change states (pvectl vm set-hostname VM NEW).
const (
	// SetHostname: a hostname change was requested; the record already
	// holds the new name. Next, rename the VM in PVE (its name, which
	// cloud-init gives the guest as hostname, and the description).
	SetHostname State = "set_hostname"
	// HostnameRenamed: PVE has the new name; next, delete the old name's
	// DNS records and publish the new name's.
	HostnameRenamed State = "hostname_renamed"
)

// Restore states (pvectl backup restore VM VOLID): the archive is in the
// record (restore_volid) from the request until the VM is ready again. The
// restore table hands the VM to the change-package table at its entry
// (change_package), whose steps re-apply the VM's product and start it.
const (
	// Restore: a restore was requested; next, stop the VM (graceful, then forced).
	Restore State = "restore"
	// RestoreStopped: the VM is stopped; next, delete its snapshots.
	RestoreStopped State = "restore_stopped"
	// RestoreSnapshotsRemoved: the VM has no snapshots; next, restore the
	// archive over it (then change_package re-applies the product).
	RestoreSnapshotsRemoved State = "restore_snapshots_removed"
)

// Power action states: one small table per action, each entered from
// Ready by its request (pvectl vm start|stop|shutdown|reboot) and ending
// in Ready. The action a VM is carrying out is its state.
const (
	// PowerStart: a start was requested; next, start the VM (done if running).
	PowerStart State = "power_start"
	// PowerStop: a forced stop was requested; next, stop the VM (done if stopped).
	PowerStop State = "power_stop"
	// PowerShutdown: an ACPI shutdown was requested (forced after
	// stop_timeout only with --force); next, shut the VM down.
	PowerShutdown State = "power_shutdown"
	// PowerReboot: a reboot was requested; next, PVE's reboot (falling back
	// to a forced stop when the guest ignores ACPI and reboot_fallback is on).
	PowerReboot State = "power_reboot"
	// PowerRebooted: PVE's reboot ended OK, or the fallback stopped the VM
	// (or it was found stopped); next, start it unless it runs.
	PowerRebooted State = "power_rebooted"
)

var all = []State{
	Creation, SetIP, Clone, SetDNS, Migrated, SetCPURAM, SetSystemDiskSize,
	SetSystemDiskBandwidth, SetCreatedAdditionalDisk, SetAdditionalDiskSize,
	SetAdditionalDiskBandwidth, SetNetwork, SetFirewall, SetCloudinit, Starting, Ready,
	ChangePackage, CPUpdateIP, CPStop, CPCPURAM, CPSystemDiskSize, CPSystemDiskBandwidth,
	CPAdditionalDisk, CPAdditionalDiskSize, CPAdditionalDiskBandwidth, CPNetwork,
	CPFirewall, CPStart,
	Terminate, TerminateStopped, TerminateBackupsRemoved, TerminateDNSRemoved,
	TerminateDeleted, Remove, ErrorTerminate,
	SetDNSRecords, Reinstall,
	PowerStart, PowerStop, PowerShutdown, PowerReboot, PowerRebooted,
	Suspend, SuspendStopped, Suspended, Unsuspend, UnsuspendRestored,
	Migrate, MigrateMoved,
	SetHostname, HostnameRenamed,
	Restore, RestoreStopped, RestoreSnapshotsRemoved,
}

// All returns every known state, sorted by name.
func All() []State {
	out := append([]State(nil), all...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, k := range all {
		if k == s {
			return true
		}
	}
	return false
}

// Final reports whether the cron leaves a VM in this state alone: no step
// runs for it (a suspended VM is only looked at, and stopped again if it
// runs).
func (s State) Final() bool {
	return s == Ready || s == Remove || s == ErrorTerminate || s == Suspended
}

func (s State) String() string { return string(s) }
