-- +goose Up
-- A VM that waits at one step for many ticks (a long clone, a PVE lock) writes one waiting run per
-- tick; 50 of them pushed the run that started the wait out of the log (RunsKeptPerVM). A waiting
-- run whose only line is at the same step as the VM's previous run, itself waiting, is folded into
-- that run instead (issue 14): repeats counts the folded runs, last_at and last_result are the
-- newest one's time and result. The first run of the wait, with its lines, stays.
ALTER TABLE runs ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN last_result TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE runs DROP COLUMN last_result;
ALTER TABLE runs DROP COLUMN last_at;
ALTER TABLE runs DROP COLUMN repeats;
