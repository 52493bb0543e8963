package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

// demoArgs are the flags of `mmogit demo`.
type demoArgs struct {
	agents int    // --agents N
	dir    string // --dir: keep everything here (default: a temp dir, removed)
	keep   bool   // --keep: do not delete the temp dir
}

// demoRow is one agent's line in the demo's table (and --json).
type demoRow struct {
	Agent        string   `json:"agent"`
	OnionAddress string   `json:"onion_address"`
	ReadySeconds float64  `json:"ready_s"`
	Discovered   []string `json:"discovered"`
	DiscoverSecs float64  `json:"discover_s"`
	Received     int      `json:"memories_received"`
	Rejected     int      `json:"rejected"`
	SyncSeconds  float64  `json:"sync_s"`
	Total        int      `json:"memories_total"`
	Valid        int      `json:"memories_valid"`
}

// demoResult is what `demo --json` prints.
type demoResult struct {
	TestnetSeconds float64   `json:"testnet_s"`
	Agents         []demoRow `json:"agents"`
	Converged      bool      `json:"converged"`
	TotalSeconds   float64   `json:"total_s"`
}

func newDemoCmd() *cobra.Command {
	a := demoArgs{agents: 3}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Offline end-to-end demo: private Tor network, N agents that advertise, discover each other and sync over onion services",
		Long: `Bring up a private Tor network on 127.0.0.1, start N agents (each its own
identity, tor, onion service and memory repository), let each post memories,
advertise "memory_sync" in the DHT, discover the others by service and sync
with them over onion services only. Prints a table, then tears everything
down. Needs tor and obfs4proxy installed (` + "`make demo`" + ` installs them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, a)
		},
	}
	f := cmd.Flags()
	f.IntVar(&a.agents, "agents", a.agents, "number of agents")
	f.StringVar(&a.dir, "dir", "", "work directory (default: a new temp dir, removed at the end)")
	f.BoolVar(&a.keep, "keep", false, "keep the work directory (logs, repositories) after the demo")
	return cmd
}

func runDemo(ctx context.Context, a demoArgs) (err error) {
	if a.agents < 2 {
		return errors.New("demo: need at least 2 agents")
	}
	t0 := time.Now()
	dir := a.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "mmogit-demo-"); err != nil {
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()

	step := func(format string, args ...any) {
		g.infof("[%5.1fs] %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, args...))
	}
	step("starting a private Tor network in %s", dir)
	tn := time.Now()
	net, err := testnet.Start(ctx, testnet.Options{Dir: filepath.Join(dir, "testnet"), Logger: g.log})
	if err != nil {
		return err
	}
	defer net.Close()
	res := demoResult{TestnetSeconds: time.Since(tn).Seconds()}
	step("network up in %.1fs", res.TestnetSeconds)

	agents := make([]*cluster.Agent, a.agents)
	opts := make([]cluster.AgentOptions, a.agents)
	rows := make([]demoRow, a.agents)
	defer func() {
		step("stopping agents and tor")
		for _, ag := range agents {
			if ag != nil {
				ag.Stop(context.Background())
			}
		}
	}()
	for i := range agents {
		name := fmt.Sprintf("agent%d", i+1)
		opts[i] = cluster.AgentOptions{
			Bin: bin, Dir: filepath.Join(dir, name), Name: name,
			Testnet: net.Info().Dir, Services: []string{"memory_sync"}, Verbose: g.verbose > 0,
		}
		ag, err := cluster.Prepare(opts[i])
		if err != nil {
			return err
		}
		if err := postDemoMemories(ctx, ag, name); err != nil {
			return err
		}
		agents[i] = ag
		rows[i] = demoRow{Agent: name, OnionAddress: ag.ID.OnionAddress()}
	}
	// Everyone bootstraps the DHT from agent1's onion address.
	for i := 1; i < len(agents); i++ {
		opts[i].Bootstrap = []string{agents[0].ID.OnionAddress()}
	}
	step("starting %d agents (each: own tor, onion service from its key, libp2p host, DHT)", a.agents)
	start := time.Now()
	for i, ag := range agents {
		if err := ag.Start(opts[i]); err != nil {
			return err
		}
	}
	for i, ag := range agents {
		if _, err := ag.WaitReady(ctx); err != nil {
			return err
		}
		rows[i].ReadySeconds = time.Since(start).Seconds()
		step("%s published %s", ag.Name, ag.ID.OnionAddress())
	}

	step("discovering agents offering memory_sync")
	errs := make(chan error, len(agents))
	for i, ag := range agents {
		go func() { errs <- discoverAll(ctx, ag, len(agents)-1, &rows[i]) }()
	}
	for range agents {
		if err := <-errs; err != nil {
			return err
		}
	}
	step("syncing memories over onion services")
	for i, ag := range agents {
		go func() {
			t := time.Now()
			rs, err := ag.Client.Sync(ctx, "")
			for _, r := range rs {
				if r.Error != "" && err == nil {
					err = fmt.Errorf("%s: sync with %s: %s", ag.Name, r.PeerID, r.Error)
				}
				rows[i].Rejected += r.Rejected
			}
			rows[i].SyncSeconds = time.Since(t).Seconds()
			errs <- err
		}()
	}
	for range agents {
		if err := <-errs; err != nil {
			return err
		}
	}
	// A second round lets what one agent learned from a third reach the rest.
	for _, ag := range agents {
		if _, err := ag.Client.Sync(ctx, ""); err != nil {
			return err
		}
	}
	res.Converged = true
	for i, ag := range agents {
		st, err := memory.Open(filepath.Join(ag.Dir, "messages"))
		if err != nil {
			return err
		}
		all, err := st.All(ctx)
		if err != nil {
			return err
		}
		rows[i].Total = len(all)
		rows[i].Received = 0
		for _, e := range all {
			if e.Valid {
				rows[i].Valid++
				if e.Message.Author != ag.ID.PubHex() {
					rows[i].Received++
				}
			}
		}
		if rows[i].Valid != 2*len(agents) {
			res.Converged = false
		}
	}
	res.Agents, res.TotalSeconds = rows, time.Since(t0).Seconds()
	err = g.emit(res, func(w io.Writer) { printDemo(w, res) })
	if err == nil && !res.Converged {
		return errors.New("demo: agents did not converge to the same memories")
	}
	return err
}

func postDemoMemories(ctx context.Context, ag *cluster.Agent, name string) error {
	st, err := memory.Open(filepath.Join(ag.Dir, "messages"))
	if err != nil {
		return err
	}
	if _, err := st.Post(ctx, ag.ID.Private, "hello from "+name); err != nil {
		return err
	}
	confidence := 0.9
	mem, err := memory.NewMemory("observation", name+" can reach its peers only through onion services", []string{"demo", "tor"}, &confidence)
	if err != nil {
		return err
	}
	body, err := mem.JSON()
	if err != nil {
		return err
	}
	_, err = st.Post(ctx, ag.ID.Private, body)
	return err
}

// discoverAll polls discovery until want other agents are found.
func discoverAll(ctx context.Context, ag *cluster.Agent, want int, row *demoRow) error {
	t := time.Now()
	var last error
	for ctx.Err() == nil {
		res, err := ag.Client.Discover(ctx, "memory_sync")
		last = err
		if err == nil && len(res.Ads) >= want {
			row.Discovered = row.Discovered[:0]
			for _, ad := range res.Ads {
				row.Discovered = append(row.Discovered, ad.OnionAddress[:8])
			}
			sort.Strings(row.Discovered)
			row.DiscoverSecs = time.Since(t).Seconds()
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("demo: %s discovered fewer than %d agents (last error: %v):\n%s", ag.Name, want, last, ag.Tail(15))
}

func printDemo(w io.Writer, r demoResult) {
	fmt.Fprintf(w, "\nprivate Tor network up in %.1fs; whole demo %.1fs\n\n", r.TestnetSeconds, r.TotalSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tONION ADDRESS\tREADY\tDISCOVERED (memory_sync)\tFOUND IN\tRECEIVED\tREJECTED\tSYNC\tVALID/TOTAL")
	for _, a := range r.Agents {
		fmt.Fprintf(tw, "%s\t%s…\t%.1fs\t%s\t%.1fs\t%d\t%d\t%.1fs\t%d/%d\n", a.Agent, a.OnionAddress[:16], a.ReadySeconds,
			strings.Join(a.Discovered, ","), a.DiscoverSecs, a.Received, a.Rejected, a.SyncSeconds, a.Valid, a.Total)
	}
	tw.Flush()
	if r.Converged {
		fmt.Fprintln(w, "\nall agents hold every agent's memories, all signatures valid, synced over onion services only")
	}
}
