-- +goose Up
-- Indexes for the idle tick and the read commands (issue 15). With 10,000 VMs almost all ready, the
-- step runner's query of due VMs, the queued-suspend check and `vm list --node/--product/--held`
-- each scanned the whole table.
-- vms_active: the VMs not in a final state (ready, remove, error_terminate, suspended), which are
-- the only ones the step runner can advance. A partial index: it holds only the VMs under way, and
-- store.VMsDue repeats its WHERE word for word so that SQLite can use it.
CREATE INDEX vms_active ON vms (id) WHERE status NOT IN ('ready', 'remove', 'error_terminate', 'suspended');
-- vms_suspend_pending: the VMs with a suspend queued until they are ready (a handful at most).
CREATE INDEX vms_suspend_pending ON vms (id) WHERE suspend_pending = 1;
-- vms_held: the held VMs (vm list --held, vm retry --all --held).
CREATE INDEX vms_held ON vms (id) WHERE held = 1;
-- vms_hostname: a VM named by hostname (log, vm show, every request) and the check that a new VM's
-- hostname is free.
CREATE INDEX vms_hostname ON vms (hostname);
-- vm list --node / --product.
CREATE INDEX vms_node ON vms (node, id);
CREATE INDEX vms_product ON vms (product, id);

-- +goose Down
DROP INDEX vms_product;
DROP INDEX vms_node;
DROP INDEX vms_hostname;
DROP INDEX vms_held;
DROP INDEX vms_suspend_pending;
DROP INDEX vms_active;
