-- +goose Up
-- Reinstall onto another template and hostname change (issue 11).
-- template: the name, in the product's templates map, of the template the VM was (or is being)
-- cloned from; '' = the product's default (a product with a single template).
-- Two new states in the vms.status CHECK (the column replaced in place as in 00006):
-- set_hostname (a vm set-hostname was requested; the record holds the new name) and
-- hostname_renamed (PVE's VM name and cloud-init hostname are the new name; next, swap the DNS records).
ALTER TABLE vms ADD COLUMN template TEXT NOT NULL DEFAULT '';
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_new TEXT NOT NULL DEFAULT 'creation' CHECK (status_new IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted', 'suspend', 'suspend_stopped', 'suspended', 'unsuspend', 'unsuspend_restored', 'migrate', 'migrate_moved', 'set_hostname', 'hostname_renamed'));
UPDATE vms SET status_new = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_new TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);

-- +goose Down
-- A VM in a hostname state goes back to ready (its new name stays in the record) before the CHECK narrows.
UPDATE vms SET status = 'ready' WHERE status IN ('set_hostname', 'hostname_renamed');
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_old TEXT NOT NULL DEFAULT 'creation' CHECK (status_old IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted', 'suspend', 'suspend_stopped', 'suspended', 'unsuspend', 'unsuspend_restored', 'migrate', 'migrate_moved'));
UPDATE vms SET status_old = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_old TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);
ALTER TABLE vms DROP COLUMN template;
