-- +goose Up
-- Orphans and drift (issue 14): what the last reconcile run found. One row per finding, keyed by
-- what it is about (kind, VMID or service, aspect), so a finding keeps the time it was first seen
-- across runs; a run replaces the whole set (a finding no longer seen is gone). Nothing here is
-- acted on automatically: pvectl orphans prints it, health reports it.
CREATE TABLE reconcile_findings (
    key           TEXT    PRIMARY KEY,
    kind          TEXT    NOT NULL,
    service_id    TEXT    NOT NULL DEFAULT '',
    vmid          INTEGER NOT NULL DEFAULT 0,
    node          TEXT    NOT NULL DEFAULT '',
    detail        TEXT    NOT NULL,
    fix           TEXT    NOT NULL,
    first_seen_at INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
);

-- +goose Down
DROP TABLE reconcile_findings;
