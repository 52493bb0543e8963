package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
)

// discoverService is what the bench agents advertise and look for.
const discoverService = "memory_sync"

// agentSet is a group of real agent processes.
type agentSet struct {
	bin, dir string
	direct   bool
	testnet  string
	agents   []*cluster.Agent
}

// stop stops every agent (and with it its tor).
func (s *agentSet) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range s.agents {
		a.Stop(ctx)
	}
}

// start prepares and launches one agent bootstrapping from bootstrap.
func (s *agentSet) start(bootstrap []string) (*cluster.Agent, error) {
	name := fmt.Sprintf("agent%d", len(s.agents)+1)
	o := cluster.AgentOptions{
		Bin: s.bin, Dir: filepath.Join(s.dir, name), Name: name, Testnet: s.testnet,
		Bootstrap: bootstrap, Services: []string{discoverService},
	}
	if s.direct {
		o.Testnet = ""
		o.Configure = func(c *config.Config) { c.Transport = config.Direct }
	}
	a, err := cluster.Prepare(o)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := a.Start(o); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	s.agents = append(s.agents, a)
	return a, nil
}

// bootstrapAddr is how the others reach the first agent.
func (s *agentSet) bootstrapAddr(ctx context.Context) ([]string, error) {
	first := s.agents[0]
	if !s.direct {
		return []string{first.ID.OnionAddress()}, nil
	}
	st, err := first.WaitReady(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	var out []string
	for _, l := range st.Listen {
		out = append(out, l+"/p2p/"+st.PeerID)
	}
	return out, nil
}

// startRest launches agents 2..k and waits until all are ready.
func (s *agentSet) startRest(ctx context.Context, k int) error {
	boot, err := s.bootstrapAddr(ctx)
	if err != nil {
		return err
	}
	for len(s.agents) < k {
		if _, err := s.start(boot); err != nil {
			return err
		}
	}
	for _, a := range s.agents {
		if _, err := a.WaitReady(ctx); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	return nil
}

// discoverTimes polls discovery on the last agent until it returns every
// other agent (converge, counted from now), then times `warm` more calls.
func (s *agentSet) discoverTimes(ctx context.Context, warm int) (discoverSample, error) {
	a := s.agents[len(s.agents)-1]
	return discoverUntil(ctx, a.Name, len(s.agents)-1, warm, func(ctx context.Context) (int, error) {
		res, err := a.Client.Discover(ctx, discoverService)
		return len(res.Ads), err
	})
}

// discoverSample is discovery at one network size.
type discoverSample struct {
	n        int           // agents in the network, the discoverer included
	converge time.Duration // all ready → first answer listing every other
	calls    []float64     // seconds of each call after that
}

// median is the median warm call in seconds.
func (d discoverSample) median() float64 { return Median(d.calls) }

// convergeTimeout bounds how long one network size may take to converge.
const convergeTimeout = 5 * time.Minute

// discoverUntil calls discover until it reports at least want agents, then
// times warm more calls, each of which must report them all too.
func discoverUntil(ctx context.Context, who string, want, warm int, discover func(context.Context) (int, error)) (discoverSample, error) {
	ctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	defer cancel()
	d := discoverSample{n: want + 1}
	t0 := time.Now()
	for {
		got, err := discover(ctx)
		if err == nil && got >= want {
			break
		}
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("bench: %s found %d of %d agents (last error %v): %w", who, got, want, err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	d.converge = time.Since(t0)
	for range warm {
		t := time.Now()
		got, err := discover(ctx)
		if err != nil {
			return d, fmt.Errorf("bench: %w", err)
		}
		if got < want {
			return d, fmt.Errorf("bench: %s: discover found %d of %d agents after converging", who, got, want)
		}
		d.calls = append(d.calls, time.Since(t).Seconds())
	}
	return d, nil
}

// agentCost is what one agent process costs at a moment.
type agentCost struct {
	peers      int     // peers connected, from its status
	goroutines int     // runtime.NumGoroutine in the agent, from its status
	rssMB      float64 // the agent process's resident set
	torMB      float64 // its own tor's resident set (0 in direct mode)
}

// cost reads agent i's status (goroutines, rss_bytes, peers) and its tor's
// resident set from /proc. An agent whose status lacks rss_bytes (an older
// binary) is measured from /proc too.
func (s *agentSet) cost(ctx context.Context, i int) (agentCost, error) {
	a := s.agents[i]
	st, err := a.Client.Status(ctx)
	if err != nil {
		return agentCost{}, fmt.Errorf("bench: status of %s: %w", a.Name, err)
	}
	c := agentCost{peers: st.PeersConnected, goroutines: st.Goroutines, rssMB: float64(st.RSSBytes) / 1e6}
	if st.RSSBytes == 0 {
		if c.rssMB, err = rssMB(a.PID()); err != nil {
			return c, err
		}
	}
	if s.direct {
		return c, nil
	}
	pid, err := a.TorPID()
	if err != nil {
		return c, fmt.Errorf("bench: %w", err)
	}
	c.torMB, err = rssMB(pid)
	return c, err
}

// settle is how long an agent is left alone before its cost is read, so
// start-up and connection set-up work has finished.
const settle = 2 * time.Second

// idleCost waits settle and reads agent i's cost.
func (s *agentSet) idleCost(ctx context.Context, i int) (agentCost, error) {
	select {
	case <-ctx.Done():
		return agentCost{}, ctx.Err()
	case <-time.After(settle):
	}
	return s.cost(ctx, i)
}

// loadFirst brings the first agent to at least want connected peers and
// reads its cost. The other agents bootstrapped from it and mostly still
// hold that connection; the rest are in-process tor-only libp2p clients
// (the agent's host recipe, no store) dialing its onion service through the
// network's client tor, each on a new circuit. It returns the cost, how
// many clients it added, and a function closing them.
func (e *env) loadFirst(ctx context.Context, s *agentSet, want int) (agentCost, int, func(), error) {
	var (
		mu      sync.Mutex // mu guards clients
		clients []*peerHost
	)
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			c.close()
		}
		clients = nil
	}
	first := s.agents[0]
	port := config.Default().Tor.OnionPort
	for round := 0; ; round++ {
		c, err := s.cost(ctx, 0)
		if err == nil && c.peers >= want {
			c, err = s.idleCost(ctx, 0)
			if err == nil && c.peers >= want {
				mu.Lock()
				n := len(clients)
				mu.Unlock()
				return c, n, closeAll, nil
			}
		}
		if err != nil {
			closeAll()
			return c, 0, nil, err
		}
		if round == 5 {
			closeAll()
			return c, 0, nil, fmt.Errorf("bench: %s holds %d of %d peers after %d rounds of dialing", first.Name, c.peers, want, round)
		}
		var wg sync.WaitGroup
		errs := make(chan error, want)
		sem := make(chan struct{}, 4)
		for range want - c.peers {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				ph, err := e.newTorClient(ctx, nil, nil, nil)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				clients = append(clients, ph)
				mu.Unlock()
				err = retryUnreachable(ctx, func() error {
					_, err := ph.h.ConnectOnion(ctx, first.ID.OnionAddress(), port)
					return err
				})
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil && ctx.Err() != nil {
			closeAll()
			return c, 0, nil, fmt.Errorf("bench: peer clients: %w", err)
		}
	}
}

// errNoRSS means /proc/<pid>/status had no VmRSS line.
var errNoRSS = errors.New("bench: no VmRSS in /proc status")

// rssMB reads VmRSS of pid from /proc, in MB (10^6 bytes).
func rssMB(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: rss: %w", err)
	}
	defer f.Close()
	return parseVmRSS(bufio.NewScanner(f))
}

// parseVmRSS finds "VmRSS:   12345 kB" and returns it in MB.
func parseVmRSS(sc *bufio.Scanner) (float64, error) {
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%w: %q", errNoRSS, sc.Text())
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", errNoRSS, err)
		}
		return kb * 1024 / 1e6, nil
	}
	return 0, errNoRSS
}
