-- +goose Up
-- DNS retry state of a DNS-dirty VM: how many background retries of its records failed in a row,
-- and when process_vms may try again (unix ms; 0 = at the next pass).
ALTER TABLE vms ADD COLUMN dns_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN dns_next_at  INTEGER NOT NULL DEFAULT 0;
CREATE INDEX vms_dns_due ON vms (dns_dirty, dns_next_at);

-- A VM whose records are all in place again starts its next failure streak from the first backoff,
-- whoever cleared the flag.
-- +goose StatementBegin
CREATE TRIGGER vms_dns_clean AFTER UPDATE OF dns_dirty ON vms
WHEN NEW.dns_dirty = 0 AND (NEW.dns_attempts <> 0 OR NEW.dns_next_at <> 0)
BEGIN
    UPDATE vms SET dns_attempts = 0, dns_next_at = 0 WHERE id = NEW.id;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER vms_dns_clean;
DROP INDEX vms_dns_due;
ALTER TABLE vms DROP COLUMN dns_next_at;
ALTER TABLE vms DROP COLUMN dns_attempts;
