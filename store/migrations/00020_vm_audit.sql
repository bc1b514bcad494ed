-- +goose Up
-- Who held an address or a VMID, and when, after the VM's record is gone (issue 14: the purge task
-- deletes records in remove after purge.removed_days; pvectl audit ip|vmid answers abuse reports).
--
-- While a record lives, it remembers what it gave up:
-- last_vmid / last_node: the VMID and node it held when its resources were released (0 / '' = never
-- released); released_at: when (unix ms; 0 = never). The live vmid column is NULL once released.
ALTER TABLE vms ADD COLUMN last_vmid   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN last_node   TEXT    NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN released_at INTEGER NOT NULL DEFAULT 0;
-- Records that released their VMID before this migration: the VMID from their log ("released VMID
-- 1000 and 1 address(es)" of the release step, or reset-status remove's "released VMID 1000").
UPDATE vms SET
    last_vmid = COALESCE((SELECT CAST(substr(l.detail, instr(l.detail, 'released VMID ') + 14) AS INTEGER)
        FROM run_lines l JOIN runs r ON r.id = l.run_id
        WHERE r.vm_id = vms.id AND l.detail LIKE '%released VMID %' ORDER BY l.id DESC LIMIT 1), 0),
    released_at = CASE WHEN status = 'remove' THEN step_started_at ELSE 0 END
WHERE vmid IS NULL;

-- ip_history: every address a record held and gave up (a change-package's removed address, a
-- terminate's): written where the allocation is deleted, deleted with the record. allocated_at /
-- released_at: unix ms.
CREATE TABLE ip_history (
    id           INTEGER PRIMARY KEY,
    vm_id        INTEGER NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    address      TEXT    NOT NULL,
    family       INTEGER NOT NULL,
    pool         TEXT    NOT NULL,
    allocated_at INTEGER NOT NULL,
    released_at  INTEGER NOT NULL
);
CREATE INDEX ip_history_vm ON ip_history (vm_id);
CREATE INDEX ip_history_address ON ip_history (address);

-- vm_audit: one row per VM record deleted (by the purge, or by delete-record), written in the
-- transaction that deletes it; never deleted by pvectl. vmid 0 = unknown (a record removed before
-- this migration whose log no longer says). created_at: the record's creation (the VMID was
-- reserved soon after); released_at: when its VMID and addresses were released (0 = unknown);
-- removed_at: when it reached remove (or, delete-record, when it was deleted); deleted_at: when
-- the record was deleted; how: purge | delete-record.
CREATE TABLE vm_audit (
    id          INTEGER PRIMARY KEY,
    service_id  TEXT    NOT NULL,
    hostname    TEXT    NOT NULL,
    product     TEXT    NOT NULL,
    vmid        INTEGER NOT NULL DEFAULT 0,
    node        TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    released_at INTEGER NOT NULL DEFAULT 0,
    removed_at  INTEGER NOT NULL,
    deleted_at  INTEGER NOT NULL,
    how         TEXT    NOT NULL CHECK (how IN ('purge', 'delete-record'))
);
CREATE INDEX vm_audit_vmid ON vm_audit (vmid);
CREATE INDEX vm_audit_service ON vm_audit (service_id);

-- vm_audit_ips: the addresses of an audited record (its ip_history, and for delete-record the
-- allocations it still held), held from held_from until held_until (unix ms).
CREATE TABLE vm_audit_ips (
    audit_id   INTEGER NOT NULL REFERENCES vm_audit (id) ON DELETE CASCADE,
    address    TEXT    NOT NULL,
    family     INTEGER NOT NULL,
    pool       TEXT    NOT NULL,
    held_from  INTEGER NOT NULL,
    held_until INTEGER NOT NULL
);
CREATE INDEX vm_audit_ips_address ON vm_audit_ips (address);
CREATE INDEX vm_audit_ips_audit ON vm_audit_ips (audit_id);

-- +goose Down
DROP TABLE vm_audit_ips;
DROP TABLE vm_audit;
DROP TABLE ip_history;
ALTER TABLE vms DROP COLUMN released_at;
ALTER TABLE vms DROP COLUMN last_node;
ALTER TABLE vms DROP COLUMN last_vmid;
