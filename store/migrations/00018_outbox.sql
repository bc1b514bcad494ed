-- +goose Up
-- Notifications (issue 14): an event (a VM ready, changed, terminated, held, …) is written here in
-- the transaction of the state change that caused it, one row per configured channel, and the
-- notify task delivers it: at least once, with event_id stable across retries so the receiver can
-- de-duplicate. service_id (not a foreign key) keeps the row when the VM record is deleted.
-- attempts/next_attempt_at: delivery retries with backoff; parked_at: given up after
-- notifications.max_attempts (shown by pvectl notifications --failed and pvectl health).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    event           TEXT    NOT NULL,
    service_id      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    delivered_at    INTEGER NOT NULL DEFAULT 0,
    parked_at       INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    UNIQUE (event_id, channel)
);
CREATE INDEX outbox_due ON outbox (delivered_at, parked_at, next_attempt_at);

-- +goose Down
DROP TABLE outbox;
