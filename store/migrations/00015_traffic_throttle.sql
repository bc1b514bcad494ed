-- +goose Up
-- The traffic throttle (issue 13, traffic_action: throttle): while throttle_mbps > 0 and the time
-- is before throttle_until (epoch ms, the end of the billing period the VM went over its
-- traffic_limit_gb in), the VM's NIC carries rate=throttle_mbps instead of the product's rate.
-- collect_stats writes it (the intent) before it changes net0, and clears it only after net0 is
-- back at the product's rate; the change-package's network step applies the same rate.
ALTER TABLE vms ADD COLUMN throttle_mbps INTEGER NOT NULL DEFAULT 0 CHECK (throttle_mbps >= 0);
ALTER TABLE vms ADD COLUMN throttle_until INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE vms DROP COLUMN throttle_until;
ALTER TABLE vms DROP COLUMN throttle_mbps;
