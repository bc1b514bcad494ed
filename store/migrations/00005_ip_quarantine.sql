-- +goose Up
-- ip_released: when each address was last freed, so the allocator can keep it
-- out of the pool for a quarantine (resolvers still cache its old records).
CREATE TABLE ip_released (
    address     TEXT    PRIMARY KEY,
    pool        TEXT    NOT NULL,
    released_at INTEGER NOT NULL
);
CREATE INDEX ip_released_pool ON ip_released (pool, released_at);

-- +goose Down
DROP TABLE ip_released;
