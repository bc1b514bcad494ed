-- +goose Up
-- Suspend and unsuspend (pvectl vm suspend|unsuspend): five new states in the vms.status CHECK
-- (the column replaced in place as in 00006), and the suspend's record:
-- suspend_reason: the --reason of the last suspend; suspend_pending: a suspend asked while the VM
-- was in a pipeline, carried out once it is ready; suspend_saved: what the VM had before the suspend
-- (onboot, as JSON), kept until the unsuspend restored it.
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_new TEXT NOT NULL DEFAULT 'creation' CHECK (status_new IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted', 'suspend', 'suspend_stopped', 'suspended', 'unsuspend', 'unsuspend_restored'));
UPDATE vms SET status_new = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_new TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);

ALTER TABLE vms ADD COLUMN suspend_reason  TEXT    NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN suspend_pending INTEGER NOT NULL DEFAULT 0 CHECK (suspend_pending IN (0, 1));
ALTER TABLE vms ADD COLUMN suspend_saved   TEXT    NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE vms DROP COLUMN suspend_saved;
ALTER TABLE vms DROP COLUMN suspend_pending;
ALTER TABLE vms DROP COLUMN suspend_reason;
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_old TEXT NOT NULL DEFAULT 'creation' CHECK (status_old IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted'));
UPDATE vms SET status_old = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_old TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);
