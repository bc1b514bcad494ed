-- +goose Up
-- step_data: what a step must remember across ticks besides a PVE task (when the graceful
-- shutdown was sent, the volume a disk removal detached). Cleared whenever the status changes.
ALTER TABLE vms ADD COLUMN step_data TEXT NOT NULL DEFAULT '';

-- releasing: an address a change-package took away from the VM. It stays reserved (no other VM
-- can get it) until DNS no longer points at it; then the row is deleted.
ALTER TABLE ip_allocations ADD COLUMN releasing INTEGER NOT NULL DEFAULT 0 CHECK (releasing IN (0, 1));

-- +goose Down
ALTER TABLE ip_allocations DROP COLUMN releasing;
ALTER TABLE vms DROP COLUMN step_data;
