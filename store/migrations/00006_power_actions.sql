-- +goose Up
-- Power actions (pvectl vm start|stop|shutdown|reboot): five new states in the vms.status CHECK, the
-- PVE power state as a step last read it, and the --force of a pending shutdown.
--
-- SQLite cannot alter a column's CHECK, and rebuilding vms would cascade into runs, dns_records
-- and ip_allocations (foreign keys are on). So the status column is replaced in place: a new
-- column with the new CHECK takes the values, the old one (and the index on it) is dropped, and
-- the new one is renamed. Every row and its id stay; only the column's position changes (every
-- query names its columns).
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_new TEXT NOT NULL DEFAULT 'creation' CHECK (status_new IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall', 'power_start', 'power_stop', 'power_shutdown', 'power_reboot', 'power_rebooted'));
UPDATE vms SET status_new = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_new TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);

-- power_state: "running", "stopped", … as PVE reported it the last time a step read the VM's
-- status; power_seen_at: when (unix ms; 0 = never).
ALTER TABLE vms ADD COLUMN power_state   TEXT    NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN power_seen_at INTEGER NOT NULL DEFAULT 0;
-- power_force: the pending power_shutdown was asked with --force (forced stop after stop_timeout).
ALTER TABLE vms ADD COLUMN power_force   INTEGER NOT NULL DEFAULT 0 CHECK (power_force IN (0, 1));

-- +goose Down
ALTER TABLE vms DROP COLUMN power_force;
ALTER TABLE vms DROP COLUMN power_seen_at;
ALTER TABLE vms DROP COLUMN power_state;
DROP INDEX vms_due;
ALTER TABLE vms ADD COLUMN status_old TEXT NOT NULL DEFAULT 'creation' CHECK (status_old IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall'));
UPDATE vms SET status_old = status;
ALTER TABLE vms DROP COLUMN status;
ALTER TABLE vms RENAME COLUMN status_old TO status;
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);
