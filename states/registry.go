package states

// Pipelines returns every pipeline table pvectl runs.
func Pipelines() Registry {
	return Registry{Deploy(), ChangePackageTable(), TerminateTable(), ReinstallTable(), DNSRecords(),
		PowerStartTable(), PowerStopTable(), PowerShutdownTable(), PowerRebootTable(),
		SuspendTable(), UnsuspendTable(), MigrateTable(), SetHostnameTable(), RestoreTable()}
}
