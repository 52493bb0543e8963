package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newAgentCmd) }

// agentRunArgs are the flags of `mmogit agent run`.
type agentRunArgs struct {
	testnet    string   // --testnet D: join the private Tor network in D
	bootstrap  []string // --bootstrap: extra DHT bootstrap peers
	useBridges bool     // --use-bridges: use the bridges from tor.json
	transport  string   // --transport: override the configured policy
	services   []string // --services: advertise these
}

func newAgentCmd() *cobra.Command {
	var a agentRunArgs
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "The long-running agent process",
	}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (for systemd and tests; `tor start` runs it in the background)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAgent(ctx, a)
		},
	}
	f := run.Flags()
	f.StringVar(&a.testnet, "testnet", "", "join the private Tor network in this directory")
	f.StringArrayVar(&a.bootstrap, "bootstrap", nil, "DHT bootstrap peer: onion address or multiaddr (repeatable)")
	f.BoolVar(&a.useBridges, "use-bridges", false, "connect to tor through the bridges in tor.json")
	f.StringVar(&a.transport, "transport", "", "override the transport policy: tor, direct or hybrid")
	f.StringSliceVar(&a.services, "services", nil, "advertise these services")
	cmd.AddCommand(run)
	return cmd
}

func runAgent(ctx context.Context, a agentRunArgs) error {
	// Everything the agent and its tor write (logs, state, keys) is private.
	platform.Umask(0o077)
	if g.verbose == 0 {
		// The agent's log is its record of what happened: info by default.
		g.log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	id, err := identity.Load(g.configDir)
	if err != nil {
		return err
	}
	cfg, err := config.Load(g.configDir)
	if err != nil {
		return err
	}
	if a.transport != "" {
		if cfg.Transport, err = config.ParseTransport(a.transport); err != nil {
			return err
		}
	}
	if a.useBridges {
		cfg.Tor.UseBridges = true
	}
	if len(a.services) > 0 {
		cfg.Services = a.services
	}
	opts := agent.Options{ConfigDir: g.configDir, Config: cfg, Identity: id, Bootstrap: a.bootstrap, Logger: g.log}
	if a.testnet != "" {
		info, err := loadTestnet(a.testnet)
		if err != nil {
			return err
		}
		opts.TestnetTorrc = info.ClientTorrc
		if cfg.Tor.UseBridges {
			if opts.TestnetTorrc, err = testnetBridges(&opts.Config.Tor, info, a.testnet); err != nil {
				return err
			}
		}
	}
	if opts.Config.Tor.UseBridges && len(opts.Config.Tor.Bridges) == 0 {
		return fmt.Errorf("bridges requested (--use-bridges or \"use_bridges\" in %s) but none are configured: add \"bridges\": [\"obfs4 IP:PORT FP cert=… iat-mode=0\"] (or \"snowflake IP:PORT FP fingerprint=FP url=… fronts=… ice=…\") under \"tor\" in %s, or with --testnet use a network started with `mmogit testnet up --bridge`",
			filepath.Join(g.configDir, config.FileName), filepath.Join(g.configDir, config.FileName))
	}
	ag, err := agent.New(opts)
	if err != nil {
		return err
	}
	return ag.Run(ctx)
}

// loadTestnet reads the private network description in dir, with an
// error that says how to get one.
func loadTestnet(dir string) (testnet.Info, error) {
	info, err := testnet.Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("no private Tor network in %s; start one with `mmogit testnet up --dir %s`", dir, dir)
	}
	return info, err
}

// testnetBridges makes the agent's tor enter the private network through
// its obfs4 bridge: the bridge line and transport come from the network
// (unless tor.json names its own), and the torrc lines the tor package
// writes itself for bridges (UseBridges, ClientTransportPlugin, Bridge) are
// removed from the network's lines so that none appears twice.
func testnetBridges(t *config.TorSettings, info testnet.Info, dir string) ([]string, error) {
	if len(info.BridgeClientTorrc) == 0 || info.BridgeLine == "" {
		if len(t.Bridges) > 0 { // the user's own bridges into the network
			var lines []string
			for _, l := range info.ClientTorrc {
				if l != "UseEntryGuards 0" { // tor refuses bridges without guards
					lines = append(lines, l)
				}
			}
			return lines, nil
		}
		return nil, fmt.Errorf("--use-bridges: the private network in %s has no bridge; start one with `mmogit testnet down --dir %s && mmogit testnet up --dir %s --bridge`", dir, dir, dir)
	}
	if len(t.Bridges) == 0 {
		t.Bridges = []string{info.BridgeLine}
	}
	var lines []string
	for _, l := range info.BridgeClientTorrc {
		f := strings.Fields(l)
		if len(f) > 0 && (strings.EqualFold(f[0], "UseBridges") || strings.EqualFold(f[0], "Bridge")) {
			continue
		}
		if len(f) >= 4 && strings.EqualFold(f[0], "ClientTransportPlugin") && f[2] == "exec" {
			if t.Obfs4Proxy == "" {
				t.Obfs4Proxy = strings.Join(f[3:], " ")
			}
			continue
		}
		lines = append(lines, l)
	}
	return lines, nil
}
