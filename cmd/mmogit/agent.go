package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mmogit/mmogit/internal/agent"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
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
	syscall.Umask(0o077)
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
		if len(cfg.Tor.Bridges) == 0 {
			return fmt.Errorf("--use-bridges: no bridges in %s/%s (add \"bridges\": [\"obfs4 IP:PORT FP cert=… iat-mode=0\"] under \"tor\")", g.configDir, config.FileName)
		}
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
		if cfg.Tor.UseBridges && len(info.BridgeClientTorrc) > 0 {
			opts.TestnetTorrc = info.BridgeClientTorrc
		}
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
