package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/torctl"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newTestnetCmd) }

// testnetArgs are the flags of `mmogit testnet up|status|down`.
type testnetArgs struct {
	dir     string // --dir: where the network lives
	relays  int    // --relays: extra relays beyond the 3 authorities
	bridge  bool   // --bridge: also run an obfs4 bridge
	profile string // --profile: loopback, public or slow
}

func newTestnetCmd() *cobra.Command {
	var a testnetArgs
	cmd := &cobra.Command{
		Use:   "testnet",
		Short: "Run a private Tor network on 127.0.0.1 (for demos and tests; never touches the public Tor network)",
	}
	up := &cobra.Command{
		Use:   "up",
		Short: "Start a private Tor network in the background; returns when its client is bootstrapped",
		Long: `Start 3 directory authorities, extra relays and a client, all tor processes
on 127.0.0.1 with TestingTorNetwork, in --dir. Returns once the client is at
100 %; the network keeps running until ` + "`mmogit testnet down --dir D`" + `.
Agents join it with ` + "`mmogit tor start --testnet D`" + `.

--profile public (or slow) puts a shaper in front of every relay's ORPort:
each hop adds public-network latency and each relay gets a bandwidth cap
(slow: ~100 KB/s), so raw tor looks like the public Tor network; the shapers
run in a background process that ` + "`testnet down`" + ` stops with the tors.
` + "`mmogit testnet calibrate`" + ` measures a profile.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return testnetUp(cmd.Context(), a) },
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the private Tor network in --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := testnet.Stop(a.dir); err != nil {
				return err
			}
			g.infof("testnet in %s stopped\n", a.dir)
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Report whether the private Tor network in --dir is running, and its client's addresses",
		Long: `Read the network description in --dir and check each of its tor processes.
Prints the client's SOCKS and control addresses and, when the client is up,
its bootstrap progress. Exits with status 1 unless every process is running (the
report is printed either way; --json gives it as one object, with "running").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return testnetStatus(cmd.Context(), a.dir) },
	}
	var shapeConfig string
	shape := &cobra.Command{
		Use:    "shape",
		Short:  "Serve the link shapers of a shaped private network (started by `testnet up --profile`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return testnet.RunShaper(ctx, shapeConfig, g.log)
		},
	}
	shape.Flags().StringVar(&shapeConfig, "config", "", "the network's shaper.json")
	shape.MarkFlagRequired("config")
	for _, c := range []*cobra.Command{up, status, down} {
		c.Flags().StringVar(&a.dir, "dir", "", "directory of the network (required)")
		c.MarkFlagRequired("dir")
	}
	up.Flags().IntVar(&a.relays, "relays", testnet.DefaultRelays, "extra relays beyond the 3 authorities")
	up.Flags().BoolVar(&a.bridge, "bridge", false, "also run an obfs4 bridge inside the network")
	up.Flags().StringVar(&a.profile, "profile", string(testnet.ProfileLoopback), "link conditions: loopback (none), public (public Tor network latency and bandwidth) or slow (public latency, ~100 KB/s)")
	cmd.AddCommand(up, status, down, shape, newTestnetCalibrateCmd())
	return cmd
}

func testnetUp(ctx context.Context, a testnetArgs) error {
	dir, err := filepath.Abs(a.dir)
	if err != nil {
		return err
	}
	profile, err := testnet.ParseProfile(a.profile)
	if err != nil {
		return &usageError{err}
	}
	shaper, err := shaperCommand()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	n, err := testnet.Start(ctx, testnet.Options{
		Dir: dir, Relays: a.relays, Bridge: a.bridge, Detached: true, Logger: g.log,
		Profile: profile, ShaperCommand: shaper,
		Progress: func(s string) { g.infof("testnet: %s\n", s) },
	})
	if err != nil {
		return err
	}
	info := n.Info()
	return g.emit(info, func(w io.Writer) {
		fmt.Fprintf(w, "private Tor network up in %s (%.1fs, profile %s)\n", info.Dir, time.Since(start).Seconds(), info.Profile)
		fmt.Fprintf(w, "client socks:   %s\nclient control: %s\n", info.Socks, info.Control)
		if info.BridgeLine != "" {
			fmt.Fprintf(w, "bridge:         %s\n", info.BridgeLine)
		}
		fmt.Fprintf(w, "join it with:   mmogit tor start --testnet %s\nstop it with:   mmogit testnet down --dir %s\n", info.Dir, info.Dir)
	})
}

// testnetProc is one tor process of a network in `testnet status`.
type testnetProc struct {
	PID     int    `json:"pid"`
	Node    string `json:"node,omitempty"` // auth0, relay0, client, ...
	Running bool   `json:"running"`
}

// testnetStatusOut is what `testnet status --json` prints.
type testnetStatusOut struct {
	Dir        string        `json:"dir"`
	Profile    string        `json:"profile"`
	Running    bool          `json:"running"` // every process is alive
	Alive      int           `json:"alive"`
	Processes  []testnetProc `json:"processes"`
	Socks      string        `json:"socks"`
	Control    string        `json:"control"`
	Cookie     string        `json:"cookie"`
	BridgeLine string        `json:"bridge_line,omitempty"`
	// ClientBootstrap is the client's bootstrap progress (0-100), when its
	// control port answered; ClientError says why it did not.
	ClientBootstrap *int   `json:"client_bootstrap_progress,omitempty"`
	ClientError     string `json:"client_error,omitempty"`
}

func testnetStatus(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	info, err := loadTestnet(dir)
	if err != nil {
		return err
	}
	profile := info.Profile
	if profile == "" {
		profile = testnet.ProfileLoopback // written before profiles existed
	}
	out := testnetStatusOut{Dir: dir, Profile: string(profile), Processes: []testnetProc{}, Socks: info.Socks, Control: info.Control, Cookie: info.Cookie, BridgeLine: info.BridgeLine}
	for _, pid := range info.PIDs {
		node, ok := testnet.NodeProcess(pid, dir)
		out.Processes = append(out.Processes, testnetProc{PID: pid, Node: node, Running: ok})
		if ok {
			out.Alive++
		}
	}
	out.Running = len(info.PIDs) > 0 && out.Alive == len(info.PIDs)
	if out.Alive > 0 && info.Control != "" {
		if p, err := clientBootstrap(ctx, info.Control, info.Cookie); err != nil {
			out.ClientError = err.Error()
		} else {
			out.ClientBootstrap = &p
		}
	}
	err = g.emit(out, func(w io.Writer) {
		state := "running"
		switch {
		case out.Alive == 0:
			state = "stopped"
		case !out.Running:
			state = "DEGRADED"
		}
		fmt.Fprintf(w, "private Tor network in %s (profile %s): %s (%d of %d processes alive)\n", out.Dir, out.Profile, state, out.Alive, len(out.Processes))
		for _, p := range out.Processes {
			mark := "running"
			if !p.Running {
				mark = "not running"
			}
			fmt.Fprintf(w, "  %-8s pid %-7d %s\n", p.Node, p.PID, mark)
		}
		fmt.Fprintf(w, "client socks:   %s\nclient control: %s\n", out.Socks, out.Control)
		if out.ClientBootstrap != nil {
			fmt.Fprintf(w, "client bootstrap: %d%%\n", *out.ClientBootstrap)
		} else if out.ClientError != "" {
			fmt.Fprintf(w, "client: %s\n", out.ClientError)
		}
		if out.BridgeLine != "" {
			fmt.Fprintf(w, "bridge:         %s\n", out.BridgeLine)
		}
	})
	if err != nil {
		return err
	}
	if !out.Running {
		// The report above is the result (one JSON object under --json);
		// the exit status says the network is not (fully) up.
		fmt.Fprintf(g.stderr, "mmogit: testnet in %s is not running (%d of %d tor processes alive); restart it with `mmogit testnet down --dir %s && mmogit testnet up --dir %s`\n", dir, out.Alive, len(out.Processes), dir, dir)
		return &exitError{code: exitFailure}
	}
	return nil
}

// clientBootstrap asks the network's client tor for its bootstrap progress.
func clientBootstrap(ctx context.Context, control, cookie string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := torctl.Dial(ctx, "tcp", control)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookiePath: cookie, RequireSafeCookie: true}); err != nil {
		return 0, err
	}
	st, err := c.BootstrapPhase(ctx)
	if err != nil {
		return 0, err
	}
	return st.Progress, nil
}

// shaperCommand is how a detached shaped network runs its shapers: this
// binary's hidden `testnet shape`.
func shaperCommand() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("testnet: locate mmogit for the shaper process: %w", err)
	}
	return []string{exe, "testnet", "shape"}, nil
}
