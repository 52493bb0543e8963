package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mmogit/mmogit/internal/bench"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newBenchCmd) }

// benchArgs are the flags of `mmogit bench`.
type benchArgs struct {
	memories   int    // --memories: how many memories the syncs move
	size       int    // --memory-bytes: content size of each
	sizes      []int  // --discover-sizes: agent counts discovery is timed at
	loaded     int    // --loaded-peers: peers connected for the loaded cost
	scale      int    // --direct-scale: largest in-process direct network
	iterations int    // --iterations: interleaved rounds of connect and sync_small
	syncRounds int    // --sync-rounds: interleaved rounds of the full syncs
	noAgents   bool   // --no-agents: skip the agent-process rows
	profile    string // --profile: the network's shaping profile
	testnet    string // --testnet: run on this running private network
	dir        string // --dir: keep everything here (default: a temp dir, removed)
	keep       bool   // --keep: do not delete the temp dir
}

func newBenchCmd() *cobra.Command {
	a := benchArgs{
		memories: bench.DefaultMemories, size: bench.DefaultMemoryBytes, sizes: bench.DefaultDiscoverSizes,
		loaded: bench.DefaultLoadedPeers, scale: bench.DefaultDirectScale, iterations: bench.DefaultIterations,
	}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure mmogit against raw tor and raw TCP on a private Tor network",
		Long: `Bring up a private Tor network on 127.0.0.1 and measure, side by side in the
same run: new onion connections (libp2p vs a raw SOCKS connect), memory sync
over onion and over direct TCP (vs pushing the same bytes raw), incremental
sync, discovery among 5, 10 and 20 real agents each with its own tor (vs
as many agents over direct TCP) and among up to 100 in-process hosts over
direct TCP, agent start-up until published (vs a bare tor), agent and tor
memory and goroutines idle and with 20 peers, and in-process micro numbers.
Connect, sync_small (one new memory each side of 10,000 shared) and the
full syncs are medians of interleaved rounds, min and max shown. Prints a
table, or with --json an array of {"name","ours","baseline","unit","ratio"}
rows (ratio = ours/baseline, null without a baseline; rounds, min, max,
baseline_min, baseline_max, target and met where they apply). Everything
started is stopped at the end.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runBench(ctx, a)
		},
	}
	f := cmd.Flags()
	f.IntVar(&a.memories, "memories", a.memories, "memories to sync")
	f.IntVar(&a.size, "memory-bytes", a.size, "content bytes per memory")
	f.IntSliceVar(&a.sizes, "discover-sizes", a.sizes, "agent counts discovery is timed at (each agent runs its own tor)")
	f.IntVar(&a.loaded, "loaded-peers", a.loaded, "peers connected to the agent for the loaded RSS/goroutine numbers")
	f.IntVar(&a.scale, "direct-scale", a.scale, "largest in-process direct-TCP network for discovery scaling")
	f.StringVar(&a.testnet, "testnet", "", "use the private network running in this directory instead of starting one")
	f.IntVar(&a.iterations, "iterations", a.iterations, "interleaved rounds (ours and raw) of connect_onion and sync_small")
	f.IntVar(&a.syncRounds, "sync-rounds", bench.DefaultIterations, "interleaved rounds of the full syncs, each into an empty store")
	f.BoolVar(&a.noAgents, "no-agents", false, "skip agent start-up, discovery and memory rows (most of the run time)")
	f.StringVar(&a.profile, "profile", "", "link profile of the private network it starts: loopback (default), public (public Tor latencies and bandwidth) or slow (bridge-like ~100 KB/s); with --testnet, the network's own")
	f.StringVar(&a.dir, "dir", "", "work directory (default: a new temp dir, removed at the end)")
	f.BoolVar(&a.keep, "keep", false, "keep the work directory (logs, repositories) afterwards")
	return cmd
}

func runBench(ctx context.Context, a benchArgs) (err error) {
	dir := a.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mmogit-bench-"); err != nil {
			return err
		}
		if !a.keep {
			defer os.RemoveAll(dir)
		}
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	limit := 15 * time.Minute
	if a.profile != "" && a.profile != "loopback" {
		limit = time.Hour // every circuit pays public latencies
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	rows, err := bench.Run(ctx, bench.Options{
		Dir: dir, Bin: bin, Memories: a.memories, MemoryBytes: a.size,
		DiscoverSizes: a.sizes, LoadedPeers: a.loaded, DirectScale: a.scale,
		Iterations: a.iterations, Testnet: a.testnet,
		SyncRounds: a.syncRounds, NoAgents: a.noAgents, Profile: a.profile,
		Progress: func(s string) { g.infof("%s\n", s) },
	})
	if err != nil {
		return err
	}
	return g.emit(rows, func(w io.Writer) { bench.WriteTable(w, rows) })
}
