// The pipeline tables side by side, as docs/pipelines.md shows them:
// each row is the action that moves a VM from the state it completed to the
// next, with what the runner resolves before the step's function runs (its
// product, location and config; the PVE task it follows; whether it runs
// with the VM stopped: see Step.Call). The step functions live by concern:
// allocate.go, clone.go, dns.go, disks.go, network.go, cloudinit.go,
// power.go, power_actions.go, suspend.go, migrate.go, backups.go, restore.go and
// destroy.go.

package states

// Deploy is the deploy table: from a new record to a running VM. Each row
// is the action that moves a VM from the state it completed to the next.
func Deploy() *Pipeline {
	return MustPipeline("deploy", Creation, []Step{
		{From: Creation, To: SetIP, Label: "Allocate VMID and IPs", Run: reserveVMIDAndIPs},
		{From: SetIP, To: Clone, Label: "Clone VM", Heavy: true, Run: cloneTemplate,
			Needs: NeedProduct, Task: follows("clone"), OnTaskError: cloneTaskError},
		{From: Clone, To: SetDNS, Label: "Configure DNS records", Run: publishDNS},
		{From: SetDNS, To: Migrated, Label: "Migrate to target node", Heavy: true, Run: migrateToTarget,
			Needs: NeedProduct, Task: follows("migrate")},
		{From: Migrated, To: SetCPURAM, Label: "Set CPU & RAM", Run: setCPURAM, Needs: NeedProduct | NeedConfig},
		{From: SetCPURAM, To: SetSystemDiskSize, Label: "Resize system disk", Run: resizeSystemDisk,
			Needs: NeedProduct | NeedConfig, Task: resizeTask(false)},
		{From: SetSystemDiskSize, To: SetSystemDiskBandwidth, Label: "Set system disk I/O", Run: setSystemDiskIO,
			Needs: NeedProduct | NeedConfig},
		{From: SetSystemDiskBandwidth, To: SetCreatedAdditionalDisk, Label: "Create additional disk", Run: createAdditionalDisk,
			Needs: NeedProduct | NeedConfig, SkipIf: noAdditionalDisk, Task: follows("create additional disk")},
		{From: SetCreatedAdditionalDisk, To: SetAdditionalDiskSize, Label: "Resize additional disk", Run: resizeAdditionalDisk,
			Needs: NeedProduct | NeedConfig, SkipIf: noAdditionalDisk, Task: resizeTask(true)},
		{From: SetAdditionalDiskSize, To: SetAdditionalDiskBandwidth, Label: "Set additional disk I/O", Run: setAdditionalDiskIO,
			Needs: NeedProduct | NeedConfig, SkipIf: noAdditionalDisk},
		{From: SetAdditionalDiskBandwidth, To: SetNetwork, Label: "Configure network", Run: configureNetwork,
			Needs: NeedProduct | NeedConfig},
		{From: SetNetwork, To: SetFirewall, Label: "Configure firewall", Run: configureFirewall, Needs: NeedProduct | NeedLocation},
		{From: SetFirewall, To: SetCloudinit, Label: "Configure cloud-init", Run: configureCloudInit, Needs: NeedProduct | NeedConfig},
		{From: SetCloudinit, To: Starting, Label: "Start VM", Run: startVM,
			Needs: NeedLocation, Task: follows("start"), OnTaskError: startTaskError},
		{From: Starting, To: Ready, Label: "Verify running", Run: verifyRunning, Needs: NeedLocation},
	})
}

// ChangePackageTable reconfigures a ready VM to its new product. Every cp_*
// step compares the VM with the product and logs `skip (no change)` when they
// match; disks never shrink; the VM is stopped once and started once (the
// Stopped steps stop it again after a failure started it).
func ChangePackageTable() *Pipeline {
	return MustPipeline("change_package", ChangePackage, []Step{
		{From: ChangePackage, To: CPUpdateIP, Label: "Update IPs, IP set and DNS", Run: updateIPs, Needs: NeedProduct | NeedConfig},
		{From: CPUpdateIP, To: CPStop, Label: "Stop VM", Run: stopForChange, Needs: NeedLocation},
		{From: CPStop, To: CPCPURAM, Label: "Set CPU & RAM", Run: setCPURAM, Stopped: true, Needs: NeedProduct | NeedConfig},
		{From: CPCPURAM, To: CPSystemDiskSize, Label: "Resize system disk", Run: resizeSystemDisk, Stopped: true,
			Needs: NeedProduct | NeedConfig, Task: resizeTask(false)},
		{From: CPSystemDiskSize, To: CPSystemDiskBandwidth, Label: "Set system disk I/O", Run: setSystemDiskIO, Stopped: true,
			Needs: NeedProduct | NeedConfig},
		{From: CPSystemDiskBandwidth, To: CPAdditionalDisk, Label: "Additional disk", Run: changeAdditionalDisk, Stopped: true,
			Needs: NeedProduct | NeedConfig, Task: changeDiskTask},
		{From: CPAdditionalDisk, To: CPAdditionalDiskSize, Label: "Resize additional disk", Run: resizeAdditionalDisk, Stopped: true,
			Needs: NeedProduct | NeedConfig, SkipIf: noAdditionalDisk, Task: resizeTask(true)},
		{From: CPAdditionalDiskSize, To: CPAdditionalDiskBandwidth, Label: "Set additional disk I/O", Run: setAdditionalDiskIO, Stopped: true,
			Needs: NeedProduct | NeedConfig, SkipIf: noAdditionalDisk},
		{From: CPAdditionalDiskBandwidth, To: CPNetwork, Label: "Configure network", Run: configureNetwork, Stopped: true,
			Needs: NeedProduct | NeedConfig},
		{From: CPNetwork, To: CPFirewall, Label: "Configure firewall", Run: configureFirewall, Stopped: true,
			Needs: NeedProduct | NeedLocation},
		{From: CPFirewall, To: CPStart, Label: "Start VM", Run: startVM,
			Needs: NeedLocation, Task: follows("start"), OnTaskError: startTaskError},
		{From: CPStart, To: Ready, Label: "Verify running", Run: verifyRunningAfterChange, Needs: NeedLocation},
	})
}

// TerminateTable destroys a VM in resumable phases. Only the DELETE can fail
// the terminate: then the VM goes to error_terminate, its record and IPs stay
// allocated, and the cron leaves it alone until an admin resets it.
func TerminateTable() *Pipeline {
	return MustPipeline("terminate", Terminate, []Step{
		{From: Terminate, To: TerminateStopped, Label: "Stop VM", Run: stopForTerminate, Needs: NeedUnlocked},
		{From: TerminateStopped, To: TerminateBackupsRemoved, Label: "Remove backups", Run: removeBackups, Needs: NeedUnlocked},
		{From: TerminateBackupsRemoved, To: TerminateDNSRemoved, Label: "Delete DNS records", Run: deleteDNSForTerminate},
		{From: TerminateDNSRemoved, To: TerminateDeleted, Label: "Delete VM", Exit: ErrorTerminate, Run: deleteVM, Needs: NeedUnlocked},
		{From: TerminateDeleted, To: Remove, Label: "Release IPs and VMID", Run: releaseResources},
	})
}

// ReinstallTable destroys the VM in PVE, keeping its VMID, addresses and
// MAC address, and hands it back to the deploy table at set_ip: the next
// step clones it afresh. Backups are kept.
func ReinstallTable() *Pipeline {
	return MustPipeline("reinstall", Reinstall, []Step{
		{From: Reinstall, To: SetIP, Label: "Destroy VM for reinstall", Run: destroyForReinstall, Needs: NeedUnlocked,
			Task: follows("reinstall"), OnTaskError: reinstallTaskError},
	})
}

// DNSRecords is the set_dns_records table: one step that deletes every
// record pvectl published for the VM and publishes its current plan, then
// back to ready. `pvectl dns sync VM` and `pvectl reset-status VM
// set_dns_records` queue it.
func DNSRecords() *Pipeline {
	return MustPipeline("set_dns_records", SetDNSRecords, []Step{
		{From: SetDNSRecords, To: Ready, Label: "Resync DNS records", Run: resyncDNS},
	})
}

// PowerStartTable starts a ready VM (pvectl vm start).
func PowerStartTable() *Pipeline {
	return MustPipeline("power_start", PowerStart, []Step{
		{From: PowerStart, To: Ready, Label: "Start VM", Run: startVM,
			Needs: NeedLocation, Task: follows("start"), OnTaskError: startTaskError},
	})
}

// PowerStopTable pulls the plug of a ready VM (pvectl vm stop).
func PowerStopTable() *Pipeline {
	return MustPipeline("power_stop", PowerStop, []Step{
		{From: PowerStop, To: Ready, Label: "Stop VM (forced)", Run: forceStopVM,
			Needs: NeedLocation, Task: follows("stop")},
	})
}

// PowerShutdownTable shuts a ready VM down through ACPI (pvectl vm
// shutdown): forced after stop_timeout only when asked with --force;
// without it the shutdown is given up after stop_timeout and logged.
func PowerShutdownTable() *Pipeline {
	return MustPipeline("power_shutdown", PowerShutdown, []Step{
		{From: PowerShutdown, To: Ready, Label: "Shut down VM", Run: shutdownVM, Needs: NeedLocation},
	})
}

// PowerRebootTable reboots a ready VM (pvectl vm reboot): PVE's reboot;
// when the guest ignores the ACPI request (the reboot task fails after
// stop_timeout) and reboot_fallback is on, a forced stop; then a start
// unless the VM runs.
func PowerRebootTable() *Pipeline {
	return MustPipeline("power_reboot", PowerReboot, []Step{
		{From: PowerReboot, To: PowerRebooted, Label: "Reboot VM", Run: rebootVM,
			Needs: NeedLocation, Task: rebootTask, OnTaskError: rebootTaskError},
		{From: PowerRebooted, To: Ready, Label: "Start VM", Run: startVM,
			Needs: NeedLocation, Task: follows("start"), OnTaskError: startTaskError},
	})
}

// SuspendTable suspends a VM for billing (pvectl vm suspend): stopped
// (graceful, then forced after stop_timeout), onboot=0 and the PVE tag
// "suspended", so an admin looking at PVE sees why it is off.
func SuspendTable() *Pipeline {
	return MustPipeline("suspend", Suspend, []Step{
		{From: Suspend, To: SuspendStopped, Label: "Stop VM", Run: stopForSuspend, Needs: NeedLocation},
		{From: SuspendStopped, To: Suspended, Label: "Mark suspended, revoke access", Run: markSuspended,
			Needs: NeedLocation | NeedConfig},
	})
}

// UnsuspendTable undoes a suspend (pvectl vm unsuspend): onboot and tags
// as they were, then the VM is started and back at ready.
func UnsuspendTable() *Pipeline {
	return MustPipeline("unsuspend", Unsuspend, []Step{
		{From: Unsuspend, To: UnsuspendRestored, Label: "Restore access, onboot, tags", Run: restoreSuspended,
			Needs: NeedLocation | NeedConfig},
		{From: UnsuspendRestored, To: Ready, Label: "Start VM", Run: startVM,
			Needs: NeedLocation, Task: follows("start"), OnTaskError: startTaskError},
	})
}

// MigrateTable moves a ready VM to another node (pvectl vm migrate): the
// target chosen (a named node, or "auto": the deploy's placement rule
// without the current node) and kept in the record before PVE is asked,
// then an offline migration, or a live one (online=1, with-local-disks=1
// when a disk is on local storage) for a running VM asked with --online;
// the runner follows the migrate task and records the new node. Then the
// anti-spoofing IP set and the firewall options are read on the new node
// and re-applied if PVE lost them.
func MigrateTable() *Pipeline {
	return MustPipeline("migrate", Migrate, []Step{
		{From: Migrate, To: MigrateMoved, Label: "Migrate VM", Heavy: true, Run: migrateVM,
			Needs: NeedProduct | NeedLocation, Task: follows("migrate")},
		{From: MigrateMoved, To: Ready, Label: "Verify IP set and firewall", Run: verifyFirewallAfterMigrate,
			Needs: NeedProduct | NeedLocation},
	})
}

// SetHostnameTable renames a ready VM (pvectl vm set-hostname): the
// record holds the new name from the request on; PVE's VM name (the
// hostname cloud-init gives the guest at its next boot) and the
// description's hostname line follow, then the DNS records move from the
// old name to the new one (the old name's records are exactly those the
// store recorded; the new name is checked for records that are not the
// VM's before anything is published).
func SetHostnameTable() *Pipeline {
	return MustPipeline("set_hostname", SetHostname, []Step{
		{From: SetHostname, To: HostnameRenamed, Label: "Rename VM", Run: renameVM, Needs: NeedConfig},
		{From: HostnameRenamed, To: Ready, Label: "Move DNS records", Run: resyncDNS},
	})
}

// RestoreTable restores a backup over a ready VM (pvectl backup restore VM
// VOLID): stopped (graceful, then forced after stop_timeout), its snapshots
// deleted (one per tick), then PVE restores the archive over it (same
// VMID, force=1, unique=0 so the MAC stays). The VM then goes on in the
// change-package table at change_package, whose steps re-apply its current
// product (addresses, IP set, DNS and cloud-init; CPU and RAM; disks grown,
// never shrunk below the archive's; I/O limits; network; firewall) and
// start it; its Verify running step emits the "backup restored" event.
func RestoreTable() *Pipeline {
	return MustPipeline("restore", Restore, []Step{
		{From: Restore, To: RestoreStopped, Label: "Stop VM", Run: stopForChange, Needs: NeedLocation},
		{From: RestoreStopped, To: RestoreSnapshotsRemoved, Label: "Delete snapshots", Run: removeSnapshotsForRestore, Stopped: true,
			Needs: NeedLocation, Task: snapshotDeleteTask},
		{From: RestoreSnapshotsRemoved, To: ChangePackage, Label: "Restore backup", Heavy: true, Run: restoreArchive,
			Needs: NeedProduct | NeedLocation, Task: restoreTask, OnTaskError: restoreTaskError},
	})
}
