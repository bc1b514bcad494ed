-- +goose Up
-- Traffic statistics (issue 13), written by collect_stats, read by pvectl stats.
-- One row per VM per UTC hour. Keyed by the record's service_id (unique among records and
-- what billing knows), not by vms.id: a terminated VM's record is deleted, its statistics
-- are kept until stats.retention_days. vmid, vm_id and product are as last seen (vm_id is
-- a plain column, not a foreign key, for the same reason).
-- hour: the bucket's UTC start, epoch seconds (a multiple of 3600).
-- bytes_in / bytes_out: netin / netout integrated over the part of the hour the RRD rows read cover.
-- covered: seconds of the hour the RRD rows covered (3600 = complete; the current hour is partial
-- until the next run replaces it).
-- step: the RRD step (seconds) the bucket was last computed from (60 = hour frame, 1800 = day frame).
-- A bucket read again is replaced, never added to.
CREATE TABLE traffic_hours (
    service_id TEXT NOT NULL CHECK (service_id <> ''),
    hour INTEGER NOT NULL CHECK (hour % 3600 = 0),
    vm_id INTEGER NOT NULL DEFAULT 0,
    vmid INTEGER NOT NULL DEFAULT 0,
    product TEXT NOT NULL DEFAULT '',
    bytes_in INTEGER NOT NULL DEFAULT 0 CHECK (bytes_in >= 0),
    bytes_out INTEGER NOT NULL DEFAULT 0 CHECK (bytes_out >= 0),
    step INTEGER NOT NULL DEFAULT 0,
    covered INTEGER NOT NULL DEFAULT 0 CHECK (covered BETWEEN 0 AND 3600),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (service_id, hour)
);
CREATE INDEX traffic_hours_hour ON traffic_hours (hour);

-- The over-limit event is logged once per VM per billing period.
CREATE TABLE traffic_limit_events (
    service_id TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    logged_at INTEGER NOT NULL,
    PRIMARY KEY (service_id, period_start)
);

-- +goose Down
DROP TABLE traffic_limit_events;
DROP TABLE traffic_hours;
