-- +goose Up
-- vms: one row per VM pvectl manages. status is the last completed step.
CREATE TABLE vms (
    id               INTEGER PRIMARY KEY,
    service_id       TEXT    NOT NULL UNIQUE CHECK (service_id <> ''),
    hostname         TEXT    NOT NULL CHECK (hostname <> ''),
    product          TEXT    NOT NULL CHECK (product <> ''),
    status           TEXT    NOT NULL CHECK (status IN ('creation', 'set_ip', 'clone', 'set_dns', 'migrated', 'set_cpu_ram', 'set_system_disk_size', 'set_system_disk_bandwidth', 'set_created_additional_disk', 'set_additional_disk_size', 'set_additional_disk_bandwidth', 'set_network', 'set_firewall', 'set_cloudinit', 'starting', 'ready', 'change_package', 'cp_update_ip', 'cp_stop', 'cp_cpu_ram', 'cp_system_disk_size', 'cp_system_disk_bandwidth', 'cp_additional_disk', 'cp_additional_disk_size', 'cp_additional_disk_bandwidth', 'cp_network', 'cp_firewall', 'cp_start', 'terminate', 'terminate_stopped', 'terminate_backups_removed', 'terminate_dns_removed', 'terminate_deleted', 'remove', 'error_terminate', 'set_dns_records', 'reinstall')),
    version          INTEGER NOT NULL DEFAULT 1,
    requested_node   TEXT    NOT NULL DEFAULT '',
    target_node      TEXT    NOT NULL DEFAULT '',
    node             TEXT    NOT NULL DEFAULT '',
    vmid             INTEGER UNIQUE,
    pending_upid     TEXT    NOT NULL DEFAULT '',
    pending_node     TEXT    NOT NULL DEFAULT '',
    pending_step     TEXT    NOT NULL DEFAULT '',
    step_waits       INTEGER NOT NULL DEFAULT 0,
    step_started_at  INTEGER NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    held             INTEGER NOT NULL DEFAULT 0 CHECK (held IN (0, 1)),
    last_error       TEXT    NOT NULL DEFAULT '',
    idempotency_key  TEXT    UNIQUE,
    request_digest   TEXT    NOT NULL DEFAULT '',
    ssh_keys         TEXT    NOT NULL DEFAULT '',
    password         TEXT    NOT NULL DEFAULT '',
    dns_dirty        INTEGER NOT NULL DEFAULT 0 CHECK (dns_dirty IN (0, 1)),
    mac              TEXT    NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX vms_due ON vms (status, held, next_attempt_at);

-- ip_allocations: an address belongs to at most one VM.
CREATE TABLE ip_allocations (
    id         INTEGER PRIMARY KEY,
    address    TEXT    NOT NULL UNIQUE,
    family     INTEGER NOT NULL CHECK (family IN (4, 6)),
    pool       TEXT    NOT NULL,
    vm_id      INTEGER NOT NULL REFERENCES vms (id) ON DELETE RESTRICT,
    created_at INTEGER NOT NULL
);
CREATE INDEX ip_allocations_vm ON ip_allocations (vm_id);

-- dns_records: what pvectl published, so a delete removes exactly that.
CREATE TABLE dns_records (
    id         INTEGER PRIMARY KEY,
    vm_id      INTEGER NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    zone       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    ttl        INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('published', 'failed')),
    error      TEXT    NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL,
    UNIQUE (vm_id, zone, name, type, value)
);

-- runs and run_lines: the per-VM log shown by `pvectl log`.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    vm_id       INTEGER NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    task        TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL DEFAULT 0,
    result      TEXT    NOT NULL DEFAULT 'running'
);
CREATE INDEX runs_vm ON runs (vm_id, id);

CREATE TABLE run_lines (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    step        TEXT    NOT NULL DEFAULT '',
    from_state  TEXT    NOT NULL DEFAULT '',
    to_state    TEXT    NOT NULL DEFAULT '',
    result      TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '',
    duration_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX run_lines_run ON run_lines (run_id, id);

-- task_runs: one row per run of a scheduled task.
CREATE TABLE task_runs (
    id          INTEGER PRIMARY KEY,
    task        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL DEFAULT 0,
    duration_ms INTEGER NOT NULL DEFAULT 0,
    result      TEXT    NOT NULL DEFAULT 'running' CHECK (result IN ('running', 'ok', 'error')),
    processed   INTEGER NOT NULL DEFAULT 0,
    errors      INTEGER NOT NULL DEFAULT 0,
    message     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX task_runs_task ON task_runs (task, started_at);

-- +goose Down
DROP TABLE task_runs;
DROP TABLE run_lines;
DROP TABLE dns_records;
DROP TABLE runs;
DROP TABLE ip_allocations;
DROP TABLE vms;
