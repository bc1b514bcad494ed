-- +goose Up
-- Backups (issue 12): one row per backup pvectl queued or made (manual: backup now; scheduled:
-- one per VM and schedule slot). PVE's storage content stays the truth about which archives
-- exist; a row records what pvectl asked for, the PVE tasks it started and how they ended.
--
-- state: queued (a tick starts it) → rotating (deleting the oldest unprotected backup first,
-- to stay within the product's backup_quota) → queued … → running (vzdump sent) → ok | failed;
-- skipped: a scheduled slot recorded as not run (reason in error), nothing to run.
-- slot: '' for manual backups; for scheduled ones the slot's local start ('2026-12-07T03:10'),
-- unique per VM so a slot is never backed up twice.
-- upid: the vzdump task, written right after PVE returned it; baseline: the VM's vzdump tasks
-- PVE listed before the vzdump was sent (JSON {"since": unix, "known": [UPID…]}), so a crash
-- between the call and the write of upid is resolved from PVE's task list.
-- rotate_volid: the archive being deleted, written before the DELETE; rotate_upid its imgdel task.
-- started_at: when the row entered rotating or running (unix ms; 0 never); ended_at: ok/failed/skipped.
CREATE TABLE backups (
    id           INTEGER PRIMARY KEY,
    vm_id        INTEGER NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('manual', 'scheduled')),
    slot         TEXT    NOT NULL DEFAULT '',
    note         TEXT    NOT NULL DEFAULT '',
    protected    INTEGER NOT NULL DEFAULT 0 CHECK (protected IN (0, 1)),
    state        TEXT    NOT NULL CHECK (state IN ('queued', 'rotating', 'running', 'ok', 'failed', 'skipped')),
    storage      TEXT    NOT NULL DEFAULT '',
    node         TEXT    NOT NULL DEFAULT '',
    upid         TEXT    NOT NULL DEFAULT '',
    baseline     TEXT    NOT NULL DEFAULT '',
    rotate_volid TEXT    NOT NULL DEFAULT '',
    rotate_upid  TEXT    NOT NULL DEFAULT '',
    volid        TEXT    NOT NULL DEFAULT '',
    size         INTEGER NOT NULL DEFAULT 0,
    error        TEXT    NOT NULL DEFAULT '',
    queued_at    INTEGER NOT NULL,
    started_at   INTEGER NOT NULL DEFAULT 0,
    ended_at     INTEGER NOT NULL DEFAULT 0,
    CHECK (kind = 'scheduled' OR slot = '')
);
CREATE UNIQUE INDEX backups_slot ON backups (vm_id, slot) WHERE slot <> '';
CREATE INDEX backups_vm ON backups (vm_id, id);
CREATE INDEX backups_state ON backups (state);

-- +goose Down
DROP TABLE backups;
