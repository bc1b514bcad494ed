-- +goose Up
-- detached_volume: the volume of an additional disk a change-package detached and has not destroyed
-- yet. Unlike step_data it survives status changes (a failed destroy rewinds the change), so the
-- volume is destroyed on a later attempt instead of leaking as unusedN.
ALTER TABLE vms ADD COLUMN detached_volume TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE vms DROP COLUMN detached_volume;
