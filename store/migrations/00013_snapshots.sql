-- +goose Up
-- Snapshots (issue 13): one row per snapshot operation pvectl queued (snapshot create / delete /
-- rollback requests, and the remove_snapshots task's deletes of expired snapshots). PVE's
-- snapshot list stays the truth about which snapshots exist; a row records what pvectl asked
-- for, the PVE task it started and how it ended.
--
-- op: create | delete | rollback; origin: manual (a request) | lifetime (remove_snapshots).
-- state: queued (a tick starts it when the VM is ready or suspended, not held, with no pending
-- step, and PVE holds no lock on it) → running (the task sent; upid once PVE returned it) →
-- ok | failed. A crash between the call and the write of upid is resolved by looking at the
-- effect in PVE's snapshot list (create: the name is there; delete: it is gone) or, for a
-- rollback, at PVE's task list since started_at.
-- start_after: a rollback whose VM ran before and whose snapshot has no vmstate (PVE leaves
-- such a VM stopped): it is started afterwards. attempt: 1 for the first try; a failed
-- lifetime delete is queued again with attempt+1 and not_before (backoff).
CREATE TABLE snapshot_ops (
    id          INTEGER PRIMARY KEY,
    vm_id       INTEGER NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    op          TEXT    NOT NULL CHECK (op IN ('create', 'delete', 'rollback')),
    origin      TEXT    NOT NULL DEFAULT 'manual' CHECK (origin IN ('manual', 'lifetime')),
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    vmstate     INTEGER NOT NULL DEFAULT 0 CHECK (vmstate IN (0, 1)),
    start_after INTEGER NOT NULL DEFAULT 0 CHECK (start_after IN (0, 1)),
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'ok', 'failed')),
    node        TEXT    NOT NULL DEFAULT '',
    upid        TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 1,
    not_before  INTEGER NOT NULL DEFAULT 0,
    queued_at   INTEGER NOT NULL,
    started_at  INTEGER NOT NULL DEFAULT 0,
    ended_at    INTEGER NOT NULL DEFAULT 0
);
-- One active operation per VM and snapshot name and op.
CREATE UNIQUE INDEX snapshot_ops_active ON snapshot_ops (vm_id, op, name) WHERE state IN ('queued', 'running');
CREATE INDEX snapshot_ops_vm ON snapshot_ops (vm_id, id);
CREATE INDEX snapshot_ops_state ON snapshot_ops (state);

-- +goose Down
DROP TABLE snapshot_ops;
