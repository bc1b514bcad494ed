// Package pvesim is a stateful, honest simulator of the Proxmox VE REST API
// (`/api2/json`), for tests (in-process through httptest) and demos (the
// cmd/pvesim binary).
//
// Honest means: it rejects what real PVE rejects and answers in PVE's shapes.
// Every request is validated against the subset of the official PVE 8.4.5 and
// 9.2.3 API schemas kept in testdata/pvesim-schema (a request must be valid on
// both); errors carry the message in the HTTP status line and in the body
// (`{"data":null,"message":"…\n"}`); asynchronous endpoints return UPIDs in
// PVE's exact format whose tasks run for a simulated duration and hold the VM
// lock meanwhile. See docs/simulator.md for what is and is not modelled.
//
// # Quick start (tests)
//
//	sim, apiURL, tokenID, secret := pvesim.StartTest(t, pvesim.DefaultCluster())
//	client := proxmox.NewClient(apiURL, proxmox.WithAPIToken(tokenID, secret))
//	... // drive the client
//	sim.Clock().Advance(10 * time.Second) // tasks finish, no sleeping
//	sim.RequireNoRejections(t)            // no request failed schema validation
//
// StartTest uses a manual clock (starting at DefaultStart) unless an Option
// says otherwise. apiURL ends in /api2/json, as go-proxmox expects.
//
// # Exported API (stable)
//
//	type Cluster struct { … }            // nodes, storages, bridges, VMs/templates, tokens, durations
//	func DefaultCluster() Cluster        // same as testdata/pvesim/cluster.yaml
//	func DefaultBridges() []string       // a node's bridges when it declares none: vmbr0, vmbr1
//	func ParseCluster(yaml []byte) (Cluster, error)
//	func LoadCluster(path string) (Cluster, error)
//
//	func New(c Cluster, opts ...Option) (*Sim, error)
//	func WithClock(c Clock) Option       // default: real clock
//	func WithManualClock(start time.Time) Option
//	func WithSeed(seed uint64) Option    // RNG for error rates and jitter
//	func StartTest(t testing.TB, c Cluster, opts ...Option) (sim *Sim, apiURL, tokenID, secret string)
//
//	func (s *Sim) Handler() http.Handler // /api2/json/... and the /_sim/... control endpoints
//	func (s *Sim) Clock() Clock          // *ManualClock when manual: s.Clock().(*pvesim.ManualClock)
//	func (s *Sim) Advance(d time.Duration) // advance a manual clock (panics on a real clock)
//
//	// state inspection (copies; safe to keep)
//	func (s *Sim) VM(vmid int) (VMState, bool)
//	func (s *Sim) VMs() []VMState
//	func (s *Sim) Task(upid string) (TaskState, bool)
//	func (s *Sim) Tasks() []TaskState
//	func (s *Sim) StorageContent(node, storage string) []Volume
//	func (s *Sim) Dump() State
//	func (s *Sim) Requests() []Request
//	func (s *Sim) Rejected() []Request   // requests rejected by schema validation (400)
//	func (s *Sim) RequireNoRejections(t testing.TB)
//	func (s *Sim) CheckCIPassword(vmid int, password string) bool // cipassword is never shown
//	func (s *Sim) InFlightPeaks() map[string]int // most requests in flight at once per node ("" = the endpoint)
//	func (s *Sim) ServedPeaks() map[string]int   // the same without those waiting for a worker
//	func (s *Sim) ResetInFlightPeaks()
//
//	// state setup
//	func (s *Sim) AddVM(v VMSpec) error
//	func (s *Sim) SetNetRate(vmid int, inBytesPerSec, outBytesPerSec float64)
//
//	// faults (all also reachable over POST /_sim/faults/...)
//	func (s *Sim) SetLatency(fixed, jitter time.Duration)
//	func (s *Sim) SetNodeWorkers(w int)  // pveproxy's workers: w per node, the rest queue (0 = off)
//	func (s *Sim) SetErrorRate(f ErrorRate)
//	func (s *Sim) FailNext(f FailNext)
//	func (s *Sim) FailTask(f TaskFault)
//	func (s *Sim) LeaveLock(vmid int, lock string) error
//	func (s *Sim) SetNodeOffline(node string, offline bool) error
//	func (s *Sim) SetNeverRunning(vmid int, on bool)
//	func (s *Sim) StartOutOfBand(vmid int) error
//	func (s *Sim) SetQuorum(quorate bool)
//	func (s *Sim) ClearFaults()
//
// Endpoints in faults are named "METHOD /schema/path", e.g.
// "POST /nodes/{node}/qemu/{vmid}/clone" (see Endpoints); "*" matches all.
package pvesim

//go:generate go run ./internal/schemagen/gen -shared ../../../../shared/pve-api -out ../../../testdata/pvesim-schema -gofile schema_data.go
