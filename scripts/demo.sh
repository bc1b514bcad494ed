#!/usr/bin/env bash
# make demo: deploy three VMs against a local pvesim, one tick at a time.
# Needs nothing but Go. Everything lives in a temp dir that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== building pvectl and pvesim"
go build -o "$work/pvectl" ./cmd/pvectl
go build -o "$work/pvesim" ./cmd/pvesim

echo "== starting pvesim (2 nodes, template 9000 on pve1)"
"$work/pvesim" --listen 127.0.0.1:0 --cluster testdata/pvesim/cluster.yaml \
  --task-duration 1s --task-duration-type qmclone=3s --task-duration-type qmigrate=3s >"$work/sim.out" 2>&1 &
sim_pid=$!
for _ in $(seq 50); do grep -q '^PVE_API_URL=' "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
api=$(sed -n 's/^PVE_API_URL=//p' "$work/sim.out")
token_id=$(sed -n 's/^PVE_TOKEN_ID=//p' "$work/sim.out")
export PVECTL_PROXMOX_TOKEN_SECRET=$(sed -n 's/^PVE_TOKEN_SECRET=//p' "$work/sim.out")
echo "   $api"

cat >"$work/pvectl.yaml" <<YAML
proxmox:
  url: ${api%/api2/json}
  token_id: "$token_id"
vmid_range: {min: 100, max: 199}
products:
  web:
    cores: 2
    memory_mb: 2048
    template: {vmid: 9000, node: pve1}
    target_node: pve1
    system_disk: {size_gb: 40, storage: local-lvm, iops_rd: 2000, mbps_wr: 100}
    network: {bridge: vmbr0, ipv4: 1, ipv6: 1, rate_mbps: 125}
    cloudinit: {user: admin}
  db:
    cores: 4
    memory_mb: 8192
    template: {vmid: 9000, node: pve1}
    target_node: pve2
    clone: full
    system_disk: {size_gb: 60, storage: local-lvm}
    additional_disk: {size_gb: 200, storage: local-lvm, mbps_wr: 200}
    network: {bridge: vmbr0, ipv4: 2}
    firewall: {policy_in: DROP}
  mini:
    template: {vmid: 9000, node: pve1}
    target_node: auto
    network: {bridge: vmbr0, ipv4: 1}
ip_pools:
  - {name: v4, nodes: [pve1, pve2], family: 4, bridge: vmbr0, network: 192.0.2.0/24, gateway: 192.0.2.1, dns_servers: [192.0.2.53], first: 192.0.2.10, last: 192.0.2.99}
  - {name: v6, nodes: [pve1, pve2], family: 6, bridge: vmbr0, network: "2001:db8:1::/64", gateway: "2001:db8:1::1", first: "2001:db8:1::100", last: "2001:db8:1::1ff"}
tasks:
  intervals: {process_vms: 1s}   # the demo ticks every second instead of every minute
YAML
export PVECTL_CONFIG="$work/pvectl.yaml" PVECTL_STATE_DIR="$work/state"
pv="$work/pvectl"

echo "== pvectl init (creates the state directory and its database, once)"
$pv init

echo "== creating three VMs (returns at once)"
$pv vm create --service-id 1001 --product web --hostname web1.example.com
$pv vm create --service-id 1002 --product db --hostname db1.example.com
$pv vm create --service-id 1003 --product mini --hostname mini1.example.com

echo "== ticking until all are ready"
for i in $(seq 120); do
  $pv tick
  if [ "$($pv vm list --status ready --json | grep -c '"service_id"')" -eq 3 ]; then break; fi
  sleep 1
done

echo "== pvectl vm list"
$pv vm list
if [ "$($pv vm list --status ready --json | grep -c '"service_id"')" -ne 3 ]; then
  echo "demo: not every VM reached ready after 120 ticks" >&2
  $pv log 1001 --runs 2 >&2 || true
  exit 1
fi
echo "== pvectl log 1002 --runs 4"
$pv log 1002 --runs 4
