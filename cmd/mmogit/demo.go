package main

import (
	"context"
	"crypto/ed25519"
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
	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

// demoArgs are the flags of `mmogit demo`.
type demoArgs struct {
	agents  int    // --agents N
	dir     string // --dir: keep everything here (default: a temp dir, removed)
	keep    bool   // --keep: do not delete the temp dir
	profile string // --profile: link conditions of the private network
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
	Readable     int      `json:"memories_readable"` // decrypted with its own key
	Stranger     bool     `json:"stranger,omitempty"`
	Refused      int      `json:"refused,omitempty"`
}

// demoResult is what `demo --json` prints.
type demoResult struct {
	Profile        string    `json:"profile"`
	TestnetSeconds float64   `json:"testnet_s"`
	Agents         []demoRow `json:"agents"`
	Converged      bool      `json:"converged"`
	// StrangerGotPrivate is true if the stranger holds anything but the
	// members' public posts (it never should).
	StrangerGotPrivate bool    `json:"stranger_got_private"`
	TotalSeconds       float64 `json:"total_s"`
}

func newDemoCmd() *cobra.Command {
	a := demoArgs{agents: 3}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Offline end-to-end demo: private Tor network, N agents that advertise, discover each other, join by invite and sync over onion services; a stranger gets nothing private",
		Long: `Bring up a private Tor network on 127.0.0.1, start N agents (each its own
identity, tor, onion service and memory repository) and one stranger. Each
posts a public memory and a private one (encrypted to itself), advertises
"memory_sync" in the DHT and discovers the others by service. The agents
join agent1 with one-time invites (both sides trust each other) and sync
over onion services only: every agent ends up holding every memory, and can
read the public ones and its own private one. The stranger, which found
agent1 by discovery and syncs with it by name, receives only agent1's public
post; what it offers agent1 is refused. Prints a table, then tears
everything down. Needs tor and lyrebird (or obfs4proxy) installed (` + "`make demo`" + ` installs them).`,
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
	f.StringVar(&a.profile, "profile", string(testnet.ProfileLoopback), "link conditions of the private network: loopback, public (public Tor network latency and bandwidth) or slow (public latency, ~100 KB/s)")
	return cmd
}

func runDemo(ctx context.Context, a demoArgs) (err error) {
	if a.agents < 2 {
		return errors.New("demo: need at least 2 agents")
	}
	profile, err := testnet.ParseProfile(a.profile)
	if err != nil {
		return &usageError{err}
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
	step("starting a private Tor network (profile %s) in %s", profile, dir)
	tn := time.Now()
	net, err := testnet.Start(ctx, testnet.Options{Dir: filepath.Join(dir, "testnet"), Logger: g.log, Profile: profile})
	if err != nil {
		return err
	}
	defer net.Close()
	res := demoResult{Profile: string(profile), TestnetSeconds: time.Since(tn).Seconds()}
	step("network up in %.1fs", res.TestnetSeconds)

	// The last agent is the stranger: nobody trusts it.
	n := a.agents + 1
	agents := make([]*cluster.Agent, n)
	opts := make([]cluster.AgentOptions, n)
	rows := make([]demoRow, n)
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
		if i == n-1 {
			name = "stranger"
		}
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
		rows[i] = demoRow{Agent: name, OnionAddress: ag.ID.OnionAddress(), Stranger: i == n-1}
	}
	members, stranger := agents[:n-1], agents[n-1]
	// Everyone bootstraps the DHT from agent1's onion address.
	for i := 1; i < len(agents); i++ {
		opts[i].Bootstrap = []string{agents[0].ID.OnionAddress()}
	}
	step("starting %d agents and a stranger (each: own tor, onion service from its key, libp2p host, DHT)", a.agents)
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
	for _, ag := range members[1:] {
		inv, err := invite.Create(members[0].Dir, members[0].ID.OnionAddress(), true, true, time.Hour, time.Now())
		if err != nil {
			return err
		}
		if _, err := ag.Client.Join(ctx, localapi.JoinRequest{Invite: inv.String()}); err != nil {
			return fmt.Errorf("demo: %s joins %s: %w", ag.Name, members[0].Name, err)
		}
		step("%s joined %s with a one-time invite: each trusts the other (read, write)", ag.Name, members[0].Name)
	}
	step("syncing memories over onion services with trusted peers")
	syncRound := func(record bool) error {
		for i, ag := range members {
			go func() {
				t := time.Now()
				rs, err := ag.Client.Sync(ctx, "")
				for _, r := range rs {
					if r.Error != "" && err == nil {
						err = fmt.Errorf("%s: sync with %s: %s", ag.Name, r.PeerID, r.Error)
					}
					if record {
						rows[i].Rejected += r.Rejected
						rows[i].Refused += r.Refused
					}
				}
				if record {
					rows[i].SyncSeconds = time.Since(t).Seconds()
				}
				errs <- err
			}()
		}
		for range members {
			if err := <-errs; err != nil {
				return err
			}
		}
		return nil
	}
	if err := syncRound(true); err != nil {
		return err
	}
	// A second round lets what agent1 learned from one member reach the rest.
	if err := syncRound(false); err != nil {
		return err
	}
	// The stranger found agent1 by discovery; it keeps what agent1 sends
	// (it gives agent1 the write role in its own list), agent1 gives it
	// nothing.
	if _, err := trust.Set(stranger.Dir, members[0].ID.Public, false, true, members[0].Name, "demo"); err != nil {
		return err
	}
	step("the stranger syncs with %s, which it found by discovery", members[0].Name)
	st0 := time.Now()
	srs, err := stranger.Client.Sync(ctx, members[0].ID.OnionAddress())
	if err != nil {
		return err
	}
	for _, r := range srs {
		if r.Error != "" {
			return fmt.Errorf("demo: stranger: sync with %s: %s", members[0].Name, r.Error)
		}
		rows[n-1].Rejected += r.Rejected
	}
	rows[n-1].SyncSeconds = time.Since(st0).Seconds()
	// What agent1 refused of the stranger's is in agent1's own sync with it.
	if rs, err := members[0].Client.Sync(ctx, stranger.ID.OnionAddress()); err == nil {
		for _, r := range rs {
			rows[0].Refused += r.Refused
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
			if !e.Valid {
				continue
			}
			rows[i].Valid++
			if e.Message.Author != ag.ID.PubHex() {
				rows[i].Received++
			}
			if !seal.IsSealed(e.Message.Content) {
				rows[i].Readable++
			} else if _, err := seal.Open(e.Message.Content, ag.ID.Private); err == nil {
				rows[i].Readable++
			}
			if ag == stranger && e.Message.Author != ag.ID.PubHex() &&
				(seal.IsSealed(e.Message.Content) || e.Message.Author != members[0].ID.PubHex()) {
				res.StrangerGotPrivate = true
			}
		}
		// A member holds both memories of every member and reads the
		// public ones and its own private one.
		if ag != stranger && (rows[i].Valid != 2*len(members) || rows[i].Readable != len(members)+1) {
			res.Converged = false
		}
	}
	// The stranger holds its own two and agent1's public one, nothing else.
	strangerOK := rows[n-1].Valid == 3 && !res.StrangerGotPrivate
	res.Agents, res.TotalSeconds = rows, time.Since(t0).Seconds()
	err = g.emit(res, func(w io.Writer) { printDemo(w, res) })
	if err == nil && !res.Converged {
		return errors.New("demo: agents did not converge to the same memories")
	}
	if err == nil && !strangerOK {
		return fmt.Errorf("demo: the stranger holds %d memories (want its own 2 and agent1's public one); private: %v", rows[n-1].Valid, res.StrangerGotPrivate)
	}
	return err
}

func postDemoMemories(ctx context.Context, ag *cluster.Agent, name string) error {
	st, err := memory.Open(filepath.Join(ag.Dir, "messages"))
	if err != nil {
		return err
	}
	// Public: anyone who syncs with this agent may read it.
	if _, err := st.Post(ctx, ag.ID.Private, "hello from "+name); err != nil {
		return err
	}
	// Private: encrypted to this agent alone (what `mmogit remember`
	// does by default). Trusted peers hold and relay it; only its author
	// reads it.
	confidence := 0.9
	mem, err := memory.NewMemory("observation", name+" can reach its peers only through onion services", []string{"demo", "tor"}, &confidence)
	if err != nil {
		return err
	}
	body, err := mem.JSON()
	if err != nil {
		return err
	}
	sealed, err := seal.Seal(body, []ed25519.PublicKey{ag.ID.Public})
	if err != nil {
		return err
	}
	_, err = st.Post(ctx, ag.ID.Private, sealed)
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
	fmt.Fprintf(w, "\nprivate Tor network (profile %s) up in %.1fs; whole demo %.1fs\n\n", r.Profile, r.TestnetSeconds, r.TotalSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tONION ADDRESS\tREADY\tDISCOVERED (memory_sync)\tFOUND IN\tRECEIVED\tREJECTED\tREFUSED\tSYNC\tVALID/TOTAL\tREADABLE")
	for _, a := range r.Agents {
		fmt.Fprintf(tw, "%s\t%s…\t%.1fs\t%s\t%.1fs\t%d\t%d\t%d\t%.1fs\t%d/%d\t%d\n", a.Agent, a.OnionAddress[:16], a.ReadySeconds,
			strings.Join(a.Discovered, ","), a.DiscoverSecs, a.Received, a.Rejected, a.Refused, a.SyncSeconds, a.Valid, a.Total, a.Readable)
	}
	tw.Flush()
	if r.Converged {
		fmt.Fprintln(w, "\nall agents hold every agent's memories (private ones encrypted), all signatures valid, synced over onion services only;")
		fmt.Fprintln(w, "each reads the public memories and its own private one")
	}
	if !r.StrangerGotPrivate {
		fmt.Fprintln(w, "the stranger received agent1's public post and nothing private; agent1 stored nothing it offered (REFUSED)")
	}
}
