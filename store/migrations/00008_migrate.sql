-- +goose Up
-- Migrate a ready VM (pvectl vm migrate VM --node N [--online]): two new states in the vms.status
-- CHECK (the column replaced in place as in 00006), and the request's options:
-- migrate_node: the node asked for ("auto" = the deploy's placement rule, the current node
-- excluded); migrate_online: --online (a running VM is migrated live). The target the first step
-- chose is kept in target_node, which the request clears.
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_new TEXT NOT NULL DEFAULT 'creation' CHECK (status_new IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted', 'suspend', 'suspend_stopped', 'suspended', 'unsuspend', 'unsuspend_restored', 'migrate', 'migrate_moved'));
UPDATE vms SET status_new = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_new TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);

ALTER TABLE vms ADD COLUMN migrate_node   TEXT    NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN migrate_online INTEGER NOT NULL DEFAULT 0 CHECK (migrate_online IN (0, 1));

-- +goose Down
ALTER TABLE vms DROP COLUMN migrate_online;
ALTER TABLE vms DROP COLUMN migrate_node;
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_old TEXT NOT NULL DEFAULT 'creation' CHECK (status_old IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted', 'suspend', 'suspend_stopped', 'suspended', 'unsuspend', 'unsuspend_restored'));
UPDATE vms SET status_old = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_old TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);
