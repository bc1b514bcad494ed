-- +goose Up
-- Prometheus counters and histograms counted inside a tick (issue 14): step runs and failures, PVE
-- request latency. pvectl is a short-lived cron process, so the cumulative value of each series
-- lives here: a tick that writes metrics adds its increments in one transaction at its end and
-- exposes the totals, which only ever grow. name is the series' name as exposed (a histogram's
-- buckets, sum and count are rows of their own: pvectl_x_bucket with an "le" label, pvectl_x_sum,
-- pvectl_x_count); labels the label values as a JSON object with sorted keys.
CREATE TABLE metric_counters (
    name   TEXT NOT NULL,
    labels TEXT NOT NULL,
    value  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE metric_counters;
