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
func (s *agentSet) discoverTimes(ctx context.Context, warm int) (converge time.Duration, calls []float64, err error) {
	a := s.agents[len(s.agents)-1]
	want := len(s.agents) - 1
	t0 := time.Now()
	for {
		res, err := a.Client.Discover(ctx, discoverService)
		if err == nil && len(res.Ads) >= want {
			break
		}
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("bench: %s found fewer than %d agents (last error %v): %w", a.Name, want, err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	converge = time.Since(t0)
	for range warm {
		t := time.Now()
		res, err := a.Client.Discover(ctx, discoverService)
		if err != nil {
			return 0, nil, fmt.Errorf("bench: %w", err)
		}
		if len(res.Ads) < want {
			return 0, nil, fmt.Errorf("bench: discover found %d of %d agents after converging", len(res.Ads), want)
		}
		calls = append(calls, time.Since(t).Seconds())
	}
	return converge, calls, nil
}

// rss returns the median resident set of the agents and of their tors, MB.
func (s *agentSet) rss() (agentMB, torMB float64, err error) {
	var ag, tr []float64
	for _, a := range s.agents {
		m, err := rssMB(a.PID())
		if err != nil {
			return 0, 0, err
		}
		ag = append(ag, m)
		if s.direct {
			continue
		}
		pid, err := a.TorPID()
		if err != nil {
			return 0, 0, fmt.Errorf("bench: %w", err)
		}
		if m, err = rssMB(pid); err != nil {
			return 0, 0, err
		}
		tr = append(tr, m)
	}
	return Median(ag), Median(tr), nil
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
