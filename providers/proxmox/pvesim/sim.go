package pvesim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sim is one simulated PVE cluster. All methods are safe for concurrent use.
type Sim struct {
	mu      sync.Mutex
	clock   Clock
	rng     *rand.Rand
	cluster Cluster
	nodes   map[string]*node
	order   []string // node names in cluster order
	vms     map[int]*vm
	tasks   map[string]*task
	taskSeq []*task // creation order
	pid     uint32
	boot    time.Time
	quorate bool

	requests []Request
	faults   faults
	schema   *validator
	access   *access  // user.cfg: handlers_access.go
	flight   inflight // requests in flight per node: inflight.go
}

type node struct {
	name     string
	memTotal int64
	cpus     int
	offline  bool
	storages map[string]*storage
	order    []string
	bridges  []string
}

type storage struct {
	name, typ string
	content   []string
	total     int64
	used      int64
	shared    bool
	disabled  bool
	offline   bool
	volumes   map[string]*volume
	// keepLast is the prune-backups keep-last (0: keep-all).
	keepLast     int
	maxProtected *int
}

type volume struct {
	volid     string
	format    string
	size      int64
	ctime     int64
	vmid      int
	content   string
	notes     string
	protected bool
	parent    string
	conf      map[string]string // backups: the guest config
	// backups: the guest firewall (qemu-server.fw), if it had one
	firewall map[string]string
	ipsets   []*ipset
	hasFW    bool
}

type vm struct {
	vmid         int
	node         string
	conf         map[string]string
	running      bool
	startedAt    time.Time
	created      time.Time
	firewall     map[string]string
	ipsets       []*ipset
	snapshots    []*snapshot
	netIn        float64
	netOut       float64
	profiled     bool      // traffic varies by hour (SetTrafficProfile; rrd.go)
	runs         []runSpan // when it ran (rrd.go)
	caps         []rateCap // net0 rate limits over time (rrd.go)
	neverRunning bool
	flocks       []flock
}

type flock struct {
	upid   string
	shared bool
	until  time.Time
}

type ipset struct {
	name, comment string
	entries       []*ipEntry
}

type ipEntry struct {
	cidr, comment string
	nomatch       bool
}

type snapshot struct {
	name, description, parent string
	snaptime                  int64
	vmstate                   bool
	conf                      map[string]string
}

// Option configures a Sim.
type Option func(*Sim)

// WithClock sets the clock (default: the real clock).
func WithClock(c Clock) Option { return func(s *Sim) { s.clock = c } }

// WithManualClock uses a ManualClock starting at start.
func WithManualClock(start time.Time) Option {
	return func(s *Sim) { s.clock = NewManualClock(start) }
}

// WithSeed seeds the RNG used for error rates and latency jitter.
func WithSeed(seed uint64) Option {
	return func(s *Sim) { s.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// New builds a simulator from a cluster description.
func New(c Cluster, opts ...Option) (*Sim, error) {
	s := &Sim{
		clock:   RealClock(),
		rng:     rand.New(rand.NewPCG(1, 2)),
		nodes:   map[string]*node{},
		vms:     map[int]*vm{},
		tasks:   map[string]*task{},
		pid:     0x1A2B0,
		quorate: true,
	}
	for _, o := range opts {
		o(s)
	}
	if c.Name == "" {
		c.Name = "pvesim"
	}
	if c.Version == "" {
		c.Version = "8.4.5"
	}
	if c.NextIDLower == 0 {
		c.NextIDLower = 100
	}
	if c.NextIDUpper == 0 {
		c.NextIDUpper = 1000000
	}
	if c.Durations.Task == 0 {
		c.Durations.Task = Duration(time.Second)
	}
	s.cluster = c
	s.boot = s.clock.Now().Add(-72 * time.Hour)
	v, err := loadValidator()
	if err != nil {
		return nil, err
	}
	s.schema = v
	if len(c.Nodes) == 0 {
		return nil, fmt.Errorf("pvesim: cluster has no nodes")
	}
	for _, ns := range c.Nodes {
		if !nodeNameRe.MatchString(ns.Name) {
			return nil, fmt.Errorf("pvesim: invalid node name %q", ns.Name)
		}
		if _, dup := s.nodes[ns.Name]; dup {
			return nil, fmt.Errorf("pvesim: duplicate node %q", ns.Name)
		}
		n := &node{name: ns.Name, memTotal: int64(ns.Memory), cpus: ns.CPUs, offline: ns.Offline, storages: map[string]*storage{}}
		if n.memTotal == 0 {
			n.memTotal = 64 << 30
		}
		if n.cpus == 0 {
			n.cpus = 16
		}
		n.bridges = append([]string(nil), ns.Bridges...)
		if len(n.bridges) == 0 {
			n.bridges = DefaultBridges()
		}
		for _, b := range n.bridges {
			if !bridgeRe.MatchString(b) {
				return nil, fmt.Errorf("pvesim: node %s: invalid bridge name %q", ns.Name, b)
			}
		}
		for _, ss := range ns.Storages {
			st := &storage{name: ss.Name, typ: ss.Type, content: append([]string(nil), ss.Content...), total: int64(ss.Total), used: int64(ss.Used),
				shared: ss.Shared, disabled: ss.Disabled, offline: ss.Offline, volumes: map[string]*volume{}}
			if st.typ == "" {
				st.typ = "dir"
			}
			if st.total == 0 {
				st.total = 1 << 40
			}
			keep, err := parsePrune(ss.PruneBackups)
			if err != nil {
				return nil, fmt.Errorf("pvesim: node %s: storage %s: %w", ns.Name, ss.Name, err)
			}
			st.keepLast, st.maxProtected = keep, ss.MaxProtectedBackups
			n.storages[ss.Name] = st
			n.order = append(n.order, ss.Name)
		}
		s.nodes[ns.Name] = n
		s.order = append(s.order, ns.Name)
	}
	for _, t := range c.Tokens {
		if !strings.Contains(t.ID, "!") || !strings.Contains(t.ID, "@") {
			return nil, fmt.Errorf("pvesim: token id %q is not user@realm!name", t.ID)
		}
	}
	for _, v := range c.VMs {
		if err := s.addVM(v); err != nil {
			return nil, err
		}
	}
	if err := s.initAccess(c.Access); err != nil {
		return nil, err
	}
	return s, nil
}

// AddVM adds a VM (or template, with config "template": "1") at run time.
func (s *Sim) AddVM(v VMSpec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addVM(v)
}

func (s *Sim) addVM(v VMSpec) error {
	n := s.nodes[v.Node]
	if n == nil {
		return fmt.Errorf("pvesim: VM %d: no node %q", v.VMID, v.Node)
	}
	if v.VMID < 100 || v.VMID > 999999999 {
		return fmt.Errorf("pvesim: invalid vmid %d", v.VMID)
	}
	if _, dup := s.vms[v.VMID]; dup {
		return fmt.Errorf("pvesim: VM %d already exists", v.VMID)
	}
	m := &vm{vmid: v.VMID, node: v.Node, conf: map[string]string{}, created: s.clock.Now().Add(-time.Hour), firewall: map[string]string{}}
	for k, val := range v.Config {
		m.conf[k] = val
	}
	if _, ok := m.conf["vmgenid"]; !ok && m.conf["template"] != "1" {
		m.conf["vmgenid"] = fakeUUID(uint64(v.VMID))
	}
	if _, ok := m.conf["smbios1"]; !ok {
		m.conf["smbios1"] = "uuid=" + fakeUUID(uint64(v.VMID)<<8)
	}
	// allocate the disks
	for _, key := range diskKeys(m.conf) {
		d := parseDisk(m.conf[key])
		if d.isCDROM() || d.storage == "" {
			if d.storage != "" && strings.Contains(d.volname, "cloudinit") {
				if st := n.storages[d.storage]; st != nil {
					st.volumes[d.storage+":"+d.volname] = &volume{volid: d.storage + ":" + d.volname, format: "raw", size: 4 << 20, vmid: v.VMID, content: "images"}
				}
			}
			continue
		}
		st := n.storages[d.storage]
		if st == nil {
			return fmt.Errorf("pvesim: VM %d: %s on unknown storage %q", v.VMID, key, d.storage)
		}
		st.volumes[d.storage+":"+d.volname] = &volume{volid: d.storage + ":" + d.volname, format: "raw", size: d.size, vmid: v.VMID, content: "images", ctime: s.clock.Now().Unix()}
		st.used += d.size
	}
	if v.Running && m.conf["template"] != "1" {
		m.setRunning(true, s.clock.Now().Add(-time.Hour))
	}
	s.applyTraffic(m, v.Traffic)
	m.noteNICRate(s.clock.Now().Add(-time.Hour))
	s.vms[v.VMID] = m
	return nil
}

func fakeUUID(x uint64) string {
	h := fmt.Sprintf("%016x%016x", x*0x9e3779b97f4a7c15, x^0xdeadbeefcafef00d)
	return h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// StartTest starts the simulator on an httptest server closed at the end of
// the test. It uses a ManualClock at DefaultStart unless opts set a clock.
// apiURL ends in "/api2/json"; tokenID and secret are the first token of c.
func StartTest(t testing.TB, c Cluster, opts ...Option) (sim *Sim, apiURL, tokenID, secret string) {
	t.Helper()
	opts = append([]Option{WithManualClock(DefaultStart)}, opts...)
	s, err := New(c, opts...)
	if err != nil {
		t.Fatalf("pvesim: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	if len(c.Tokens) > 0 {
		tokenID, secret = c.Tokens[0].ID, c.Tokens[0].Secret
	}
	return s, srv.URL + "/api2/json", tokenID, secret
}

// Handler serves /api2/json/... and the /_sim/... control endpoints.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/_sim/", http.HandlerFunc(s.serveControl))
	mux.Handle("/", http.HandlerFunc(s.serveAPI))
	return mux
}

// Clock returns the simulator's clock (a *ManualClock when manual).
func (s *Sim) Clock() Clock { return s.clock }

// Advance advances a manual clock by d; it panics on any other clock.
func (s *Sim) Advance(d time.Duration) {
	mc, ok := s.clock.(*ManualClock)
	if !ok {
		panic("pvesim: Advance needs a manual clock")
	}
	mc.Advance(d)
}

func (s *Sim) now() time.Time { return s.clock.Now() }

// VMState is a snapshot of one VM's state.
type VMState struct {
	VMID         int                 `json:"vmid"`
	Node         string              `json:"node"`
	Name         string              `json:"name,omitempty"`
	Status       string              `json:"status"` // running | stopped
	Lock         string              `json:"lock,omitempty"`
	Template     bool                `json:"template"`
	Config       map[string]string   `json:"config"`
	Firewall     map[string]string   `json:"firewall,omitempty"`
	IPSets       map[string][]string `json:"ipsets,omitempty"` // name → cidrs
	Snapshots    []string            `json:"snapshots,omitempty"`
	NeverRunning bool                `json:"never_running,omitempty"`
}

// TaskState is a snapshot of one task.
type TaskState struct {
	UPID       string    `json:"upid"`
	Node       string    `json:"node"`
	Type       string    `json:"type"`
	ID         string    `json:"id"`
	User       string    `json:"user"`
	Status     string    `json:"status"` // running | stopped
	ExitStatus string    `json:"exitstatus,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	Log        []string  `json:"log"`
}

// Volume is one storage content entry.
type Volume struct {
	VolID     string `json:"volid"`
	Content   string `json:"content"`
	Format    string `json:"format"`
	Size      int64  `json:"size"`
	VMID      int    `json:"vmid,omitempty"`
	Notes     string `json:"notes,omitempty"`
	Protected bool   `json:"protected,omitempty"`
}

// NodeState is a snapshot of a node.
type NodeState struct {
	Name     string         `json:"name"`
	Offline  bool           `json:"offline"`
	Memory   int64          `json:"memory"`
	MemUsed  int64          `json:"mem_used"`
	Bridges  []string       `json:"bridges"`
	Storages []StorageState `json:"storages"`
}

// StorageState is a snapshot of a storage on a node.
type StorageState struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Total   int64    `json:"total"`
	Used    int64    `json:"used"`
	Volumes []Volume `json:"volumes"`
}

// State is the whole simulator state (GET /_sim/state).
type State struct {
	Time     time.Time   `json:"time"`
	Quorate  bool        `json:"quorate"`
	Nodes    []NodeState `json:"nodes"`
	VMs      []VMState   `json:"vms"`
	Tasks    []TaskState `json:"tasks"`
	Faults   FaultState  `json:"faults"`
	Requests int         `json:"requests"`
	Rejected int         `json:"rejected"`
}

func (s *Sim) vmState(m *vm) VMState {
	st := VMState{VMID: m.vmid, Node: m.node, Name: m.conf["name"], Status: "stopped", Lock: m.conf["lock"],
		Template: m.conf["template"] == "1", Config: maskConfig(copyMap(m.conf)), Firewall: copyMap(m.firewall), NeverRunning: m.neverRunning}
	if m.running {
		st.Status = "running"
	}
	if len(m.ipsets) > 0 {
		st.IPSets = map[string][]string{}
		for _, is := range m.ipsets {
			cidrs := []string{}
			for _, e := range is.entries {
				cidrs = append(cidrs, e.cidr)
			}
			st.IPSets[is.name] = cidrs
		}
	}
	for _, sn := range m.snapshots {
		st.Snapshots = append(st.Snapshots, sn.name)
	}
	return st
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// VM returns the state of a VM.
func (s *Sim) VM(vmid int) (VMState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	m := s.vms[vmid]
	if m == nil {
		return VMState{}, false
	}
	return s.vmState(m), true
}

// VMs returns all VMs sorted by VMID.
func (s *Sim) VMs() []VMState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	return s.vmStates()
}

func (s *Sim) vmStates() []VMState {
	ids := make([]int, 0, len(s.vms))
	for id := range s.vms {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	out := make([]VMState, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.vmState(s.vms[id]))
	}
	return out
}

func (s *Sim) taskState(t *task) TaskState {
	ts := TaskState{UPID: t.upid, Node: t.node, Type: t.typ, ID: t.id, User: t.user, Status: "running", Start: t.start, Log: append([]string(nil), t.log...)}
	if t.done {
		ts.Status, ts.ExitStatus, ts.End = "stopped", t.exit, t.end
	}
	return ts
}

// Task returns the state of a task.
func (s *Sim) Task(upid string) (TaskState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	t := s.tasks[upid]
	if t == nil {
		return TaskState{}, false
	}
	return s.taskState(t), true
}

// Tasks returns all tasks in creation order.
func (s *Sim) Tasks() []TaskState {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	out := make([]TaskState, 0, len(s.taskSeq))
	for _, t := range s.taskSeq {
		out = append(out, s.taskState(t))
	}
	return out
}

func volumeOf(v *volume) Volume {
	return Volume{VolID: v.volid, Content: v.content, Format: v.format, Size: v.size, VMID: v.vmid, Notes: v.notes, Protected: v.protected}
}

func (st *storage) sortedVolumes() []*volume {
	out := make([]*volume, 0, len(st.volumes))
	for _, v := range st.volumes {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].volid < out[j].volid })
	return out
}

// StorageContent lists the volumes of a storage on a node.
func (s *Sim) StorageContent(nodeName, storageName string) []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	n := s.nodes[nodeName]
	if n == nil || n.storages[storageName] == nil {
		return nil
	}
	var out []Volume
	for _, v := range n.storages[storageName].sortedVolumes() {
		out = append(out, volumeOf(v))
	}
	return out
}

// Dump returns the whole state.
func (s *Sim) Dump() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	st := State{Time: s.now(), Quorate: s.quorate, VMs: s.vmStates(), Faults: s.faultState(), Requests: len(s.requests)}
	for _, r := range s.requests {
		if r.Rejected {
			st.Rejected++
		}
	}
	for _, name := range s.order {
		n := s.nodes[name]
		ns := NodeState{Name: name, Offline: n.offline, Memory: n.memTotal, MemUsed: s.nodeMemUsed(n), Bridges: append([]string(nil), n.bridges...)}
		for _, sn := range n.order {
			sto := n.storages[sn]
			ss := StorageState{Name: sn, Type: sto.typ, Total: sto.total, Used: sto.used, Volumes: []Volume{}}
			for _, v := range sto.sortedVolumes() {
				ss.Volumes = append(ss.Volumes, volumeOf(v))
			}
			ns.Storages = append(ns.Storages, ss)
		}
		st.Nodes = append(st.Nodes, ns)
	}
	for _, t := range s.taskSeq {
		st.Tasks = append(st.Tasks, s.taskState(t))
	}
	return st
}

func (s *Sim) nodeMemUsed(n *node) int64 {
	used := int64(2 << 30) // host
	for _, m := range s.vms {
		if m.node == n.name && m.running {
			used += m.memBytes()
		}
	}
	return used
}

func (m *vm) memBytes() int64 {
	mem := m.conf["memory"]
	if mem == "" {
		return 512 << 20
	}
	if i := strings.Index(mem, "current="); i >= 0 {
		mem = mem[i+len("current="):]
	}
	mem, _, _ = strings.Cut(mem, ",")
	v, err := strconv.ParseInt(mem, 10, 64)
	if err != nil {
		return 512 << 20
	}
	return v << 20
}

// SetNetRate sets the RRD netin/netout (bytes/s) reported for a running VM.
func (s *Sim) SetNetRate(vmid int, in, out float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.vms[vmid]; m != nil {
		m.netIn, m.netOut = in, out
	}
}
