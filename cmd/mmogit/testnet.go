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
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newTestnetCmd) }

// testnetArgs are the flags of `mmogit testnet up|down`.
type testnetArgs struct {
	dir    string // --dir: where the network lives
	relays int    // --relays: extra relays beyond the 3 authorities
	bridge bool   // --bridge: also run an obfs4 bridge
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
Agents join it with ` + "`mmogit tor start --testnet D`" + `.`,
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
	for _, c := range []*cobra.Command{up, down} {
		c.Flags().StringVar(&a.dir, "dir", "", "directory of the network (required)")
		c.MarkFlagRequired("dir")
	}
	up.Flags().IntVar(&a.relays, "relays", 1, "extra relays beyond the 3 authorities")
	up.Flags().BoolVar(&a.bridge, "bridge", false, "also run an obfs4 bridge inside the network")
	cmd.AddCommand(up, down)
	return cmd
}

func testnetUp(ctx context.Context, a testnetArgs) error {
	dir, err := filepath.Abs(a.dir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	n, err := testnet.Start(ctx, testnet.Options{
		Dir: dir, Relays: a.relays, Bridge: a.bridge, Detached: true, Logger: g.log,
		Progress: func(s string) { g.infof("testnet: %s\n", s) },
	})
	if err != nil {
		return err
	}
	info := n.Info()
	return g.emit(info, func(w io.Writer) {
		fmt.Fprintf(w, "private Tor network up in %s (%.1fs)\n", info.Dir, time.Since(start).Seconds())
		fmt.Fprintf(w, "client socks:   %s\nclient control: %s\n", info.Socks, info.Control)
		if info.BridgeLine != "" {
			fmt.Fprintf(w, "bridge:         %s\n", info.BridgeLine)
		}
		fmt.Fprintf(w, "join it with:   mmogit tor start --testnet %s\nstop it with:   mmogit testnet down --dir %s\n", info.Dir, info.Dir)
	})
}
