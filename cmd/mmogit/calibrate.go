package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mmogit/mmogit/internal/calibrate"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/spf13/cobra"
)

// newTestnetCalibrateCmd is `mmogit testnet calibrate`: raw tor figures of
// a profile, next to the figures the profile stands for.
func newTestnetCalibrateCmd() *cobra.Command {
	var (
		profile, dir string
		rounds       int
	)
	cmd := &cobra.Command{
		Use:   "calibrate",
		Short: "Measure raw tor (new onion connection, circuit round trip, bulk MB/s) on a private network profile",
		Long: `Start a private Tor network with --profile in a temporary directory (or use the
running one in --dir), join a second tor that publishes fresh onion echo services,
and measure through the network's client, with no mmogit code on the path:
new_conn (SOCKS connect to a never-seen onion until the first byte echoes),
rtt (one byte echoed on the established rendezvous circuit) and bulk (MB/s of one
stream). Prints median, min and max next to the profile's targets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := testnet.ParseProfile(profile)
			if err != nil {
				return &usageError{err}
			}
			return testnetCalibrate(cmd.Context(), p, dir, rounds)
		},
	}
	cmd.Flags().StringVar(&profile, "profile", string(testnet.ProfilePublic), "profile to start the network with: loopback, public or slow (ignored with --dir)")
	cmd.Flags().StringVar(&dir, "dir", "", "measure the running network in this directory instead of starting one")
	cmd.Flags().IntVar(&rounds, "rounds", 5, "samples of new_conn and bulk (rtt takes 4 per round)")
	return cmd
}

func testnetCalibrate(ctx context.Context, profile testnet.Profile, dir string, rounds int) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "mmogit-calibrate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var info testnet.Info
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		if info, err = loadTestnet(abs); err != nil {
			return err
		}
	} else {
		n, err := testnet.Start(ctx, testnet.Options{
			Dir: filepath.Join(work, "testnet"), Profile: profile, Logger: g.log,
			Progress: func(s string) { g.infof("testnet: %s\n", s) },
		})
		if err != nil {
			return err
		}
		defer n.Close()
		info = n.Info()
	}
	r, err := calibrate.Run(ctx, calibrate.Options{
		Network: info, Dir: work, Rounds: rounds,
		Progress: func(s string) { g.infof("calibrate: %s\n", s) },
	})
	if err != nil {
		return err
	}
	return g.emit(r, func(w io.Writer) {
		fmt.Fprintf(w, "raw tor on profile %s (%s), %d rounds, %.0fs\n", r.Profile, r.Link, len(r.NewConnS.Samples), r.TookS)
		fmt.Fprintf(w, "%-10s %9s %9s %9s  %s\n", "", "median", "min", "max", "target")
		row := func(name, unit string, s calibrate.Stat, t *calibrate.Range) {
			target := "-"
			if t != nil {
				mark := "ok"
				if s.InRange != nil && !*s.InRange {
					mark = "MISSED"
				}
				target = fmt.Sprintf("%g–%g %s (%s)", t.Min, t.Max, unit, mark)
			}
			fmt.Fprintf(w, "%-10s %9.3f %9.3f %9.3f  %s\n", name, s.Median, s.Min, s.Max, target)
		}
		var tc, tr, tb *calibrate.Range
		if r.Targets != nil {
			tc, tr, tb = &r.Targets.NewConnS, &r.Targets.RTTS, &r.Targets.BulkMBps
		}
		row("new_conn", "s", r.NewConnS, tc)
		row("rtt", "s", r.RTTS, tr)
		row(fmt.Sprintf("bulk %dM", r.BulkSize>>20), "MB/s", r.BulkMBps, tb)
	})
}
