package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/testnet"
)

// Defaults for Options.
const (
	DefaultMemories    = 10000
	DefaultMemoryBytes = 2000
	DefaultLoadedPeers = 20
	DefaultDirectScale = 100
	DefaultIterations  = 5
)

// DefaultDiscoverSizes are the network sizes discovery is timed at over
// onion (and, as the baseline, over direct TCP).
var DefaultDiscoverSizes = []int{5, 10, 20}

// Options configure Run.
type Options struct {
	// Dir holds everything the run creates: the network, tors, agents and
	// repositories. Required.
	Dir string
	// Bin is the mmogit binary the agents run (`mmogit agent run`). Required.
	Bin string
	// Testnet, if set, is the directory of a running private network
	// (`mmogit testnet up`, or a test's shared one) to use instead of
	// starting one.
	Testnet string
	// Memories is how many memories the sync measurements move, each with
	// about MemoryBytes of content.
	Memories    int
	MemoryBytes int
	// DiscoverSizes are the numbers of real agents (each with its own tor)
	// discovery is timed at, ascending, each at least 2; discover_onion is
	// the smallest. The network grows from one size to the next.
	DiscoverSizes []int
	// LoadedPeers is how many peers the first agent has connected when its
	// cost is read the second time.
	LoadedPeers int
	// DirectScale is the largest in-process direct-TCP network discovery
	// is timed on, after the DiscoverSizes.
	DirectScale int
	// Iterations is the number of interleaved rounds of the connect and
	// sync_small measurements (ours and raw in each); at least 5 for the
	// published figures.
	Iterations int
	// SyncRounds is the number of interleaved rounds of the full syncs
	// (each into a new empty store, then the raw pushes).
	SyncRounds int
	// NoAgents skips the agent-process measurements (startup, discovery,
	// memory), which take most of a run.
	NoAgents bool
	// Profile is the private network's link profile (testnet.Profile:
	// loopback, the default, public or slow). With Testnet the running
	// network's own profile applies and a different one is an error.
	Profile string
	// Progress, if set, receives one line per step.
	Progress func(string)
}

func (o *Options) setDefaults() error {
	if o.Dir == "" || o.Bin == "" {
		return errors.New("bench: Options.Dir and Options.Bin are required")
	}
	if o.Memories <= 0 {
		o.Memories = DefaultMemories
	}
	if o.MemoryBytes <= 0 {
		o.MemoryBytes = DefaultMemoryBytes
	}
	if len(o.DiscoverSizes) == 0 {
		o.DiscoverSizes = DefaultDiscoverSizes
	}
	o.DiscoverSizes = slices.Compact(slices.Sorted(slices.Values(o.DiscoverSizes)))
	if o.DiscoverSizes[0] < 2 {
		return fmt.Errorf("bench: discovery needs at least 2 agents, got %d", o.DiscoverSizes[0])
	}
	if o.LoadedPeers <= 0 {
		o.LoadedPeers = DefaultLoadedPeers
	}
	if o.DirectScale <= 0 {
		o.DirectScale = DefaultDirectScale
	}
	if o.Iterations <= 0 {
		o.Iterations = DefaultIterations
	}
	if o.SyncRounds <= 0 {
		o.SyncRounds = DefaultIterations
	}
	if _, err := testnet.ParseProfile(o.Profile); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// directSizes are the in-process direct-TCP network sizes: the discovery
// sizes and DirectScale.
func (o *Options) directSizes() []int {
	return slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(o.DiscoverSizes), o.DirectScale))))
}

// Run brings up a private Tor network (or joins Options.Testnet), measures
// everything and tears down all it started. The rows come in a fixed order.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	progress := func(format string, args ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf("[%5.1fs] ", time.Since(t0).Seconds()) + fmt.Sprintf(format, args...))
		}
	}
	var nw *testnet.Info
	if o.Testnet != "" {
		info, err := testnet.Load(o.Testnet)
		if err != nil {
			return nil, err
		}
		if p, _ := testnet.ParseProfile(o.Profile); o.Profile != "" && p != info.Profile && !(p == testnet.ProfileLoopback && info.Profile == "") {
			return nil, fmt.Errorf("bench: --profile %s, but the network in %s runs profile %q", o.Profile, o.Testnet, info.Profile)
		}
		nw = &info
	}
	profile, _ := testnet.ParseProfile(o.Profile)
	e, err := startEnv(ctx, o.Dir, nw, profile, progress)
	if err != nil {
		return nil, err
	}
	defer e.close()

	var rows []Row
	// Agents first, while nothing else loads the two cores; they are
	// stopped before the transfers start.
	var agentRows []Row
	if !o.NoAgents {
		if agentRows, err = measureAgents(ctx, e, o, progress); err != nil {
			return nil, err
		}
	}
	netRows, err := measureNetwork(ctx, e, o, progress)
	if err != nil {
		return nil, err
	}
	progress("micro benchmarks")
	micro, err := measureMicro()
	if err != nil {
		return nil, err
	}
	rows = append(append(append(rows, netRows...), agentRows...), micro...)
	progress("done; stopping everything")
	return rows, nil
}

// measureAgents runs real agents: startup, cost idle and loaded, discovery
// at every size (and its direct-TCP baseline), then the in-process
// direct-TCP scaling.
func measureAgents(ctx context.Context, e *env, o Options, progress func(string, ...any)) ([]Row, error) {
	progress("starting agent1 alone (own tor, onion service from its key)")
	onion := &agentSet{bin: o.Bin, dir: filepath.Join(o.Dir, "agents"), testnet: e.net.Dir}
	defer onion.stop()
	startup, err := agentStartup(ctx, onion)
	if err != nil {
		return nil, err
	}
	idle, err := onion.idleCost(ctx, 0)
	if err != nil {
		return nil, err
	}
	bareTorMB, err := rssMB(e.srv.Pid())
	if err != nil {
		return nil, err
	}
	progress("agent1 published in %.1fs; idle: %.1f MB, %d goroutines, its tor %.1f MB", startup.Seconds(), idle.rssMB, idle.goroutines, idle.torMB)
	onionDisc, err := discoverSizes(ctx, onion, o.DiscoverSizes, "onion", progress)
	if err != nil {
		return nil, err
	}
	progress("agent1 has %d agents around; connecting in-process clients until it holds %d peers", len(onion.agents)-1, o.LoadedPeers)
	loaded, clients, closeClients, err := e.loadFirst(ctx, onion, o.LoadedPeers)
	if err != nil {
		return nil, err
	}
	closeClients()
	progress("agent1 with %d peers: %.1f MB, %d goroutines, its tor %.1f MB", loaded.peers, loaded.rssMB, loaded.goroutines, loaded.torMB)
	onion.stop()

	direct := &agentSet{bin: o.Bin, dir: filepath.Join(o.Dir, "agents-direct"), direct: true}
	defer direct.stop()
	if _, err := direct.start(nil); err != nil {
		return nil, err
	}
	directDisc, err := discoverSizes(ctx, direct, o.DiscoverSizes, "direct", progress)
	if err != nil {
		return nil, err
	}
	direct.stop()

	scale, err := measureDirectScale(ctx, o.directSizes(), progress)
	if err != nil {
		return nil, err
	}

	rows := []Row{
		NewRow("startup_published", "s", startup.Seconds(), e.bareStartup.Seconds(), "agent launch → onion service published vs bare tor.Start+Publish"),
	}
	discNote := func(i int) string {
		on, di := onionDisc[i], directDisc[i]
		return fmt.Sprintf("%d agents, each its own tor; the newest finds the other %d: median of %d calls once converged "+
			"(converged %.1fs after all were ready; direct %.1fs); baseline: as many agent processes over direct TCP",
			on.n, on.n-1, len(on.calls), on.converge.Seconds(), di.converge.Seconds())
	}
	rows = append(rows, NewRow("discover_onion", "s", onionDisc[0].median(), directDisc[0].median(), discNote(0)))
	for i, d := range onionDisc {
		rows = append(rows, NewRow(fmt.Sprintf("discover_onion_N%d", d.n), "s", d.median(), directDisc[i].median(), discNote(i)))
	}
	for _, d := range scale {
		rows = append(rows, NewRow(fmt.Sprintf("discover_direct_N%d", d.n), "s", d.median(), scale[0].median(),
			fmt.Sprintf("%d libp2p hosts with the agent's discovery in this process on TCP loopback (lighter on 2 shared cores than "+
				"agent processes); newest finds %d, median of %d (converged %.2fs); baseline: %d hosts, so ratio = growth",
				d.n, d.n-1, len(d.calls), d.converge.Seconds(), scale[0].n)))
	}
	peersNote := fmt.Sprintf("agent1 with %d peers connected (%d other agents, %d in-process onion client(s)); baseline: agent1 idle",
		loaded.peers, loaded.peers-clients, clients)
	p := o.LoadedPeers
	return append(rows,
		Solo("agent_rss", "MB", idle.rssMB, "agent1 idle: published, 0 peers, alone in the network (status rss_bytes)"),
		NewRow(fmt.Sprintf("agent_rss_%dpeers", p), "MB", loaded.rssMB, idle.rssMB, peersNote),
		Solo("agent_goroutines", "goroutines", float64(idle.goroutines), "agent1 idle, as agent_rss (status goroutines)"),
		NewRow(fmt.Sprintf("agent_goroutines_%dpeers", p), "goroutines", float64(loaded.goroutines), float64(idle.goroutines), peersNote),
		NewRow("tor_rss", "MB", idle.torMB, bareTorMB, "agent1's own tor, idle, vs the bare tor hosting the baseline services"),
		NewRow(fmt.Sprintf("tor_rss_%dpeers", p), "MB", loaded.torMB, idle.torMB, "agent1's own tor with its agent's "+fmt.Sprint(loaded.peers)+" peers; baseline: idle"),
	), nil
}

// discoverSizes grows s (which holds at least its first agent) through
// sizes and times discovery at each.
func discoverSizes(ctx context.Context, s *agentSet, sizes []int, kind string, progress func(string, ...any)) ([]discoverSample, error) {
	var out []discoverSample
	for _, n := range sizes {
		t0 := time.Now()
		added := n - len(s.agents)
		if err := s.startRest(ctx, n); err != nil {
			return nil, err
		}
		progress("%s: %d agents ready (%d new in %.1fs); discovering %q from the newest", kind, n, added, time.Since(t0).Seconds(), discoverService)
		d, err := s.discoverTimes(ctx, 3)
		if err != nil {
			return nil, err
		}
		progress("%s: N=%d converged in %.1fs, then %.2fs per call", kind, n, d.converge.Seconds(), d.median())
		out = append(out, d)
	}
	return out, nil
}

// agentStartup launches the first agent and returns launch → published.
func agentStartup(ctx context.Context, s *agentSet) (time.Duration, error) {
	t0 := time.Now()
	a, err := s.start(nil)
	if err != nil {
		return 0, err
	}
	st, err := a.WaitReady(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	if st.PublishedAt.IsZero() {
		return time.Since(t0), nil
	}
	return st.PublishedAt.Sub(t0), nil
}

// measureNetwork does the in-process libp2p measurements: connect, onion
// and direct sync, incremental sync.
func measureNetwork(ctx context.Context, e *env, o Options, progress func(string, ...any)) ([]Row, error) {
	progress("signing %d memories of ~%d bytes", o.Memories, o.MemoryBytes)
	holderID, holderStore, err := prepareHolder(ctx, o)
	if err != nil {
		return nil, err
	}
	recvStore, err := openStore(o.Dir, "recv-onion")
	if err != nil {
		return nil, err
	}
	target, err := e.newOnionHost(ctx, recvStore)
	if err != nil {
		return nil, err
	}
	defer target.close()
	progress("connect: %d new onion connections each, ours and raw interleaved (profile %s)", o.Iterations, o.Profile)
	rows, err := measureConnectOnion(ctx, e, target, o.Iterations)
	if err != nil {
		return nil, err
	}
	onionRows, err := measureOnionSync(ctx, e, o, holderID, holderStore, target, progress)
	if err != nil {
		return nil, err
	}
	rows = append(rows, onionRows...)
	directRows, err := measureDirectSync(ctx, e, o, holderID, holderStore, progress)
	if err != nil {
		return nil, err
	}
	return append(rows, directRows...), nil
}

// prepareHolder creates the store holding the memories to sync.
func prepareHolder(ctx context.Context, o Options) (*identity.Identity, *memory.Store, error) {
	id := newIdentity()
	st, err := openStore(o.Dir, "holder")
	if err != nil {
		return nil, nil, err
	}
	res, err := st.Add(ctx, makeMemories(id, o.Memories, o.MemoryBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	if res.Added != o.Memories {
		return nil, nil, fmt.Errorf("bench: stored %d of %d memories", res.Added, o.Memories)
	}
	return id, st, nil
}

// measureOnionSync: full sync over onion, the raw push, then incremental.
func measureOnionSync(ctx context.Context, e *env, o Options, id *identity.Identity, st *memory.Store, target *peerHost, progress func(string, ...any)) ([]Row, error) {
	holder, err := e.newTorClient(ctx, id, st, nil)
	if err != nil {
		return nil, err
	}
	defer holder.close()
	err = retryUnreachable(ctx, func() error {
		_, err := holder.h.ConnectOnion(ctx, target.id.OnionAddress(), onionPort)
		return err
	})
	if err != nil {
		return nil, err
	}
	p := syncPair{holder: holder, recv: target, kind: "onion", dialRaw: e.dialRawOnion}
	n, err := holderCount(ctx, st)
	if err != nil {
		return nil, err
	}
	progress("sync over onion: %d memories, then the raw push of as many bytes, %d rounds", n, o.SyncRounds)
	r, err := measureSync(ctx, p, n, o.SyncRounds, o.Dir, progress)
	if err != nil {
		return nil, err
	}
	inc, err := measureIncremental(ctx, p, r.sync[len(r.sync)-1])
	if err != nil {
		return nil, err
	}
	small, err := measureSmall(ctx, e, p, o.Iterations, progress)
	if err != nil {
		return nil, err
	}
	return append(append(syncRows("onion", r), inc), small...), nil
}

// measureDirectSync: the same sync between direct-mode hosts on TCP
// loopback, and the raw TCP push.
func measureDirectSync(ctx context.Context, e *env, o Options, id *identity.Identity, st *memory.Store, progress func(string, ...any)) ([]Row, error) {
	recvStore, err := openStore(o.Dir, "recv-direct")
	if err != nil {
		return nil, err
	}
	recv, err := newDirectHost(ctx, nil, recvStore)
	if err != nil {
		return nil, err
	}
	defer recv.close()
	holder, err := newDirectHost(ctx, id, st)
	if err != nil {
		return nil, err
	}
	defer holder.close()
	if err := holder.h.Connect(ctx, recv.addrInfo()); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	n, err := holderCount(ctx, st)
	if err != nil {
		return nil, err
	}
	progress("sync over direct TCP: %d memories, then the raw push", n)
	r, err := measureSync(ctx, syncPair{holder: holder, recv: recv, kind: "direct", dialRaw: e.dialTCP}, n, o.SyncRounds, o.Dir, progress)
	if err != nil {
		return nil, err
	}
	return syncRows("direct", r), nil
}

// holderCount is how many memories the holder has now.
func holderCount(ctx context.Context, st *memory.Store) (int, error) {
	inv, err := st.Inventory(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	n := 0
	for _, ids := range inv {
		n += len(ids)
	}
	return n, nil
}
