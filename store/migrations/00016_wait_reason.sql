-- +goose Up
-- wait_reason: why the VM's step is waiting, as its last run said ("PVE lock backup", "clone task
-- qmclone running for 3m2s"); '' when its last step did not wait. Kept until the step's next
-- outcome; a status change clears it. vm list/show and the stuck check (issue 14) read it;
-- step_started_at already is when the VM entered its state (kept across waits and retries).
ALTER TABLE vms ADD COLUMN wait_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE vms DROP COLUMN wait_reason;
