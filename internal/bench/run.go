package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
)

// Defaults for Options.
const (
	DefaultMemories    = 10000
	DefaultMemoryBytes = 2000
	DefaultAgents      = 5
	DefaultIterations  = 5
)

// Options configure Run.
type Options struct {
	// Dir holds everything the run creates: the network, tors, agents and
	// repositories. Required.
	Dir string
	// Bin is the mmogit binary the agents run (`mmogit agent run`). Required.
	Bin string
	// Memories is how many memories the sync measurements move, each with
	// about MemoryBytes of content.
	Memories    int
	MemoryBytes int
	// Agents is the number of agents for discover_onion (at least 2).
	Agents int
	// Iterations is the number of timed connections per side.
	Iterations int
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
	if o.Agents == 0 {
		o.Agents = DefaultAgents
	}
	if o.Agents < 2 {
		return fmt.Errorf("bench: need at least 2 agents, got %d", o.Agents)
	}
	if o.Iterations <= 0 {
		o.Iterations = DefaultIterations
	}
	return nil
}

// Run brings up a private Tor network, measures everything and tears it all
// down again. The rows come in a fixed order.
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
	e, err := startEnv(ctx, o.Dir, nil, progress)
	if err != nil {
		return nil, err
	}
	defer e.close()

	var rows []Row
	// Agents first, while nothing else loads the two cores; they are
	// stopped before the transfers start.
	agentRows, err := measureAgents(ctx, e, o, progress)
	if err != nil {
		return nil, err
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

// measureAgents runs real agents: startup, discovery (and its direct-TCP
// baseline) and memory.
func measureAgents(ctx context.Context, e *env, o Options, progress func(string, ...any)) ([]Row, error) {
	progress("starting agent1 alone (own tor, onion service from its key)")
	onion := &agentSet{bin: o.Bin, dir: filepath.Join(o.Dir, "agents"), testnet: e.net.Info().Dir}
	defer onion.stop()
	startup, err := agentStartup(ctx, onion)
	if err != nil {
		return nil, err
	}
	progress("agent1 published in %.1fs; starting %d more", startup.Seconds(), o.Agents-1)
	if err := onion.startRest(ctx, o.Agents); err != nil {
		return nil, err
	}
	progress("%d agents ready; discovering %q", o.Agents, discoverService)
	conv, calls, err := onion.discoverTimes(ctx, 3)
	if err != nil {
		return nil, err
	}
	agentMB, torMB, err := onion.rss()
	if err != nil {
		return nil, err
	}
	bareTorMB, err := rssMB(e.srv.Pid())
	if err != nil {
		return nil, err
	}
	onion.stop()

	progress("baseline: %d agents in direct mode (TCP DHT)", o.Agents)
	direct := &agentSet{bin: o.Bin, dir: filepath.Join(o.Dir, "agents-direct"), direct: true}
	defer direct.stop()
	if _, err := direct.start(nil); err != nil {
		return nil, err
	}
	if err := direct.startRest(ctx, o.Agents); err != nil {
		return nil, err
	}
	dconv, dcalls, err := direct.discoverTimes(ctx, 3)
	if err != nil {
		return nil, err
	}
	k := fmt.Sprintf("%d agents; one finds the other %d", o.Agents, o.Agents-1)
	return []Row{
		NewRow("startup_published", "s", startup.Seconds(), e.bareStartup.Seconds(), "agent launch → onion service published vs bare tor.Start+Publish"),
		NewRow("discover_onion", "s", Median(calls), Median(dcalls), k+"; median of 3 once converged; baseline: same over direct TCP"),
		NewRow("discover_onion_converge", "s", conv.Seconds(), dconv.Seconds(), k+"; all ready → first complete answer; baseline: direct TCP"),
		Solo("agent_rss", "MB", agentMB, fmt.Sprintf("idle agent process, median of %d (goroutines: not exposed by the agent API)", o.Agents)),
		NewRow("tor_rss", "MB", torMB, bareTorMB, "agent's own tor vs the bare tor hosting the baseline services"),
	}, nil
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
	progress("connect: %d new onion connections each, ours and raw interleaved", o.Iterations)
	rows, err := measureConnectOnion(ctx, e, target, o.Iterations)
	if err != nil {
		return nil, err
	}
	onionRows, err := measureOnionSync(ctx, e, holderID, holderStore, target, progress)
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
func measureOnionSync(ctx context.Context, e *env, id *identity.Identity, st *memory.Store, target *peerHost, progress func(string, ...any)) ([]Row, error) {
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
	progress("sync over onion: %d memories, then the raw push of as many bytes", n)
	r, err := measureSync(ctx, p, n)
	if err != nil {
		return nil, err
	}
	inc, err := measureIncremental(ctx, p, r.sync)
	if err != nil {
		return nil, err
	}
	return append(syncRows("onion", r), inc), nil
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
	r, err := measureSync(ctx, syncPair{holder: holder, recv: recv, kind: "direct", dialRaw: e.dialTCP}, n)
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
