-- +goose Up
-- Backup schedules (issue 12): at most one per VM, deleted with its record.
-- days: the weekdays as a 7-bit mask, bit n = Go's time.Weekday n (1 = Sunday, 2 = Monday, … 64 = Saturday).
-- at_minute: the slot's start, minutes after midnight in the schedule time zone (backups.timezone).
-- randomised: 1 when pvectl picked at_minute in backups.window (no --at given).
-- checked_until: the time up to which schedule_backup has handled this schedule's slots
-- (queued or recorded as skipped), epoch ms; 0 = never. Only a hint: the backups table's unique
-- (vm, slot) row is what keeps a slot from running twice.
CREATE TABLE backup_schedules (
    vm_id INTEGER PRIMARY KEY REFERENCES vms (id) ON DELETE CASCADE,
    days INTEGER NOT NULL CHECK (days BETWEEN 1 AND 127),
    at_minute INTEGER NOT NULL CHECK (at_minute BETWEEN 0 AND 1439),
    randomised INTEGER NOT NULL DEFAULT 0 CHECK (randomised IN (0, 1)),
    checked_until INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE backup_schedules;
