package pvesim

import "sort"

// handlers is the route table: every PVE endpoint the simulator answers,
// keyed by its schema endpoint ("METHOD /path", as in Endpoints()), with
// its handler, the ACL path and privilege the schema's permissions check
// (perm), or the check its code does after parameter verification (authz).
// Requests are matched in Endpoints() order (routes, matchRoute); a schema
// endpoint without an entry answers 501 "Method '…' not implemented".
var handlers = map[string]handlerDef{
	// Cluster and nodes.
	"GET /version":             {fn: hVersion},
	"GET /cluster/status":      {fn: hClusterStatus},
	"GET /cluster/resources":   {fn: hResources},
	"GET /cluster/nextid":      {fn: hNextID},
	"GET /nodes":               {fn: hNodes},
	"GET /nodes/{node}/status": {fn: hNodeStatus, perm: nodePerm("Sys.Audit")},

	// QEMU VMs: list, create or restore (handlers_backup.go), delete, status and power.
	"GET /nodes/{node}/qemu":                         {fn: hQemuList},
	"POST /nodes/{node}/qemu":                        {fn: hCreate, authz: createAuthz},
	"DELETE /nodes/{node}/qemu/{vmid}":               {fn: hDelete, perm: vmPerm("VM.Allocate")},
	"GET /nodes/{node}/qemu/{vmid}/status/current":   {fn: hStatusCurrent, perm: vmPerm("VM.Audit")},
	"POST /nodes/{node}/qemu/{vmid}/status/start":    {fn: hPower("qmstart"), perm: vmPerm("VM.PowerMgmt")},
	"POST /nodes/{node}/qemu/{vmid}/status/stop":     {fn: hPower("qmstop"), perm: vmPerm("VM.PowerMgmt")},
	"POST /nodes/{node}/qemu/{vmid}/status/shutdown": {fn: hPower("qmshutdown"), perm: vmPerm("VM.PowerMgmt")},
	"POST /nodes/{node}/qemu/{vmid}/status/reboot":   {fn: hPower("qmreboot"), perm: vmPerm("VM.PowerMgmt")},

	// QEMU config, disks, template, cloud-init.
	"GET /nodes/{node}/qemu/{vmid}/config":    {fn: hConfigGet, perm: vmPerm("VM.Audit")},
	"POST /nodes/{node}/qemu/{vmid}/config":   {fn: hConfigSet(true), perm: vmPerm("VM.Config.Options")},
	"PUT /nodes/{node}/qemu/{vmid}/config":    {fn: hConfigSet(false), perm: vmPerm("VM.Config.Options")},
	"GET /nodes/{node}/qemu/{vmid}/pending":   {fn: hPending, perm: vmPerm("VM.Audit")},
	"PUT /nodes/{node}/qemu/{vmid}/resize":    {fn: hResize, perm: vmPerm("VM.Config.Disk")},
	"POST /nodes/{node}/qemu/{vmid}/template": {fn: hTemplate, perm: vmPerm("VM.Allocate")},
	"PUT /nodes/{node}/qemu/{vmid}/cloudinit": {fn: hCloudinit, perm: vmPerm("VM.Config.Cloudinit")},

	// Clone and migrate (handlers_clone.go).
	"POST /nodes/{node}/qemu/{vmid}/clone":   {fn: hClone, perm: vmPerm("VM.Clone")},
	"POST /nodes/{node}/qemu/{vmid}/migrate": {fn: hMigrate, perm: vmPerm("VM.Migrate")},

	// VM firewall: options and IP sets.
	"GET /nodes/{node}/qemu/{vmid}/firewall/options":                {fn: hFwGet, perm: vmPerm("VM.Audit")},
	"PUT /nodes/{node}/qemu/{vmid}/firewall/options":                {fn: hFwSet, perm: vmPerm("VM.Config.Network")},
	"GET /nodes/{node}/qemu/{vmid}/firewall/ipset":                  {fn: hIPSetList, perm: vmPerm("VM.Audit")},
	"POST /nodes/{node}/qemu/{vmid}/firewall/ipset":                 {fn: hIPSetCreate, perm: vmPerm("VM.Config.Network")},
	"GET /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}":           {fn: hIPSetEntries, perm: vmPerm("VM.Audit")},
	"POST /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}":          {fn: hIPSetAdd, perm: vmPerm("VM.Config.Network")},
	"DELETE /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}":        {fn: hIPSetDelete, perm: vmPerm("VM.Config.Network")},
	"DELETE /nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}": {fn: hIPSetRemove, perm: vmPerm("VM.Config.Network")},

	// Snapshots and RRD statistics.
	"GET /nodes/{node}/qemu/{vmid}/snapshot":                      {fn: hSnapList, perm: vmPerm("VM.Audit")},
	"POST /nodes/{node}/qemu/{vmid}/snapshot":                     {fn: hSnapCreate, perm: vmPerm("VM.Snapshot")},
	"DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}":        {fn: hSnapDelete, perm: vmPerm("VM.Snapshot")},
	"POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback": {fn: hSnapRollback, perm: vmPerm("VM.Snapshot.Rollback")},
	"GET /nodes/{node}/qemu/{vmid}/rrddata":                       {fn: hRRD, perm: vmPerm("VM.Audit")},

	// Backups and storage ({volume} takes the rest of the path).
	"POST /nodes/{node}/vzdump":                               {fn: hVzdump, authz: vzdumpAuthz},
	"GET /nodes/{node}/network":                               {fn: hNodeNetwork},
	"GET /nodes/{node}/storage":                               {fn: hStorageList},
	"GET /nodes/{node}/storage/{storage}/status":              {fn: hStorageStatus, perm: storagePerm("Datastore.Audit")},
	"GET /nodes/{node}/storage/{storage}/content":             {fn: hContentList, perm: storagePerm("Datastore.Audit")},
	"GET /nodes/{node}/storage/{storage}/content/{volume}":    {fn: hContentGet, perm: storagePerm("Datastore.Audit")},
	"PUT /nodes/{node}/storage/{storage}/content/{volume}":    {fn: hContentUpdate},
	"DELETE /nodes/{node}/storage/{storage}/content/{volume}": {fn: hContentDelete, perm: storagePerm("Datastore.Allocate")},

	// Tasks.
	"GET /nodes/{node}/tasks":               {fn: hTaskList},
	"GET /nodes/{node}/tasks/{upid}/status": {fn: hTaskStatus},
	"GET /nodes/{node}/tasks/{upid}/log":    {fn: hTaskLog},

	// Access control: ACL and pools (handlers_access.go).
	"GET /access/acl":         {fn: hACLGet},
	"GET /access/permissions": {fn: hPermissions},
	"PUT /access/acl":         {fn: hACLPut, authz: aclAuthz},
	"GET /pools":              {fn: hPoolsGet},
	"PUT /pools":              {fn: hPoolPut, perm: poolPerm("Pool.Allocate")},
	"GET /pools/{poolid}":     {fn: hPoolGet, perm: poolPerm("Pool.Audit")},
	"PUT /pools/{poolid}":     {fn: hPoolPut, perm: poolPerm("Pool.Allocate")},
}

type handlerDef struct {
	fn   handlerFunc
	perm func(c *call) (string, string)
	// authz is for endpoints whose schema says "user => 'all'" and whose
	// code checks permissions itself; it runs after parameter verification.
	authz func(c *call) *apiError
}

func vmPerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/vms/" + c.vars["vmid"], priv }
}

func nodePerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/nodes/" + c.vars["node"], priv }
}

func storagePerm(priv string) func(c *call) (string, string) {
	return func(c *call) (string, string) { return "/storage/" + c.vars["storage"], priv }
}

func (c *call) spawn(o spawnOpts) *task {
	o.node = c.vars["node"]
	o.user = c.user
	return c.s.spawn(o)
}

func errTask(msg string) func() (string, []string) {
	return func() (string, []string) { return msg, nil }
}

func sortedVMIDs(s *Sim) []int {
	ids := make([]int, 0, len(s.vms))
	for id := range s.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

func b01(b bool) int {
	if b {
		return 1
	}
	return 0
}
