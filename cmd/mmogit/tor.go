package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newTorCmd, newStatusCmd) }

func newTorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tor",
		Short: "Run the agent behind a Tor onion service, connect to peers, advertise and discover",
	}
	cmd.AddCommand(newTorStartCmd(), newTorStopCmd(), newTorStatusCmd(), newTorAddressCmd(),
		newConnectCmd("connect"), newAdvertiseCmd(), newDiscoverCmd("discover"), newRotateCmd(), newAuthKeyCmd())
	return cmd
}

func newTorStartCmd() *cobra.Command {
	a := startArgs{timeout: 5 * time.Minute}
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the agent in the background: own tor, onion service from your key, libp2p host, DHT, sync",
		Long: `Start the mmogit agent in the background. It starts and owns a tor process
(data in <config-dir>/tor-data, mode 0700), publishes an onion service whose
address is your identity key, and serves peers. The command shows tor's
bootstrap progress and returns once the onion service is published.

With --testnet D the agent's tor joins the private network started by
` + "`mmogit testnet up --dir D`" + ` instead of the public Tor network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := startAgent(cmd.Context(), a)
			if err != nil {
				return err
			}
			return g.emit(st, func(w io.Writer) {
				fmt.Fprintln(w, "agent running")
				printStatus(w, st)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.testnet, "testnet", "", "join the private Tor network in this directory")
	f.StringArrayVar(&a.bootstrap, "bootstrap", nil, "DHT bootstrap peer: onion address or multiaddr (repeatable)")
	f.BoolVar(&a.useBridges, "use-bridges", false, "connect to tor through the bridges in tor.json")
	f.StringVar(&a.transport, "transport", "", "override the transport policy: tor, direct or hybrid")
	f.StringSliceVar(&a.services, "services", nil, "advertise these services while running")
	f.DurationVar(&a.timeout, "timeout", a.timeout, "how long to wait for the onion service to be published")
	return cmd
}

func newTorStopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the background agent and its tor",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pid, err := stopAgent(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(map[string]any{"stopped": true, "pid": pid}, func(w io.Writer) {
				fmt.Fprintf(w, "agent (pid %d) stopped\n", pid)
			})
		},
	}
}

func statusRun(cmd *cobra.Command, _ []string) error {
	st, err := apiClient().Status(cmd.Context())
	if err != nil {
		return err
	}
	return g.emit(st, func(w io.Writer) { printStatus(w, st) })
}

func newTorStatusCmd() *cobra.Command {
	return &cobra.Command{Use: "status", Short: "Show tor bootstrap, onion address, publication and peers", Args: cobra.NoArgs, RunE: statusRun}
}

func newStatusCmd() *cobra.Command {
	return &cobra.Command{Use: "status", Short: "Show the agent's status (same as `tor status`)", Args: cobra.NoArgs, RunE: statusRun}
}

func newTorAddressCmd() *cobra.Command {
	c := newAddressCmd()
	c.Short = "Print this identity's onion address (offline; same as `mmogit address`)"
	return c
}

func newConnectCmd(use string) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ONION_ADDRESS|MULTIADDR",
		Short: "Connect to a peer through the agent and print the round-trip time",
		Long:  "Connect to a peer by bare onion address (the peer ID follows from the address, which is the peer's key) or by multiaddr, then ping it.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Minute)
			defer cancel()
			r, err := apiClient().Connect(ctx, args[0])
			if err != nil {
				return err
			}
			return g.emit(r, func(w io.Writer) {
				fmt.Fprintf(w, "connected to %s via %s (%s) in %.0f ms, rtt %.1f ms\n", r.PeerID, r.Transport, r.Addr, r.ConnectMs, r.RTTMillis)
			})
		},
	}
}

func newAdvertiseCmd() *cobra.Command {
	var services []string
	cmd := &cobra.Command{
		Use:   "advertise --services a,b",
		Short: "Publish a signed advertisement of this agent's services in the DHT, and keep it published",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(services) == 0 {
				return fmt.Errorf("advertise: give at least one service with --services")
			}
			ad, err := apiClient().Advertise(cmd.Context(), services)
			if err != nil {
				return err
			}
			return g.emit(ad, func(w io.Writer) {
				fmt.Fprintf(w, "advertising %s as %s (seq %d, expires %s)\n", strings.Join(ad.Services, ","), ad.OnionAddress, ad.Seq, ad.Expires.Format(time.RFC3339))
			})
		},
	}
	cmd.Flags().StringSliceVar(&services, "services", nil, "services to advertise, comma-separated (e.g. memory_sync,chat)")
	return cmd
}

func newDiscoverCmd(use string) *cobra.Command {
	var connect bool
	cmd := &cobra.Command{
		Use:   use + " SERVICE",
		Short: "Find agents offering SERVICE through verified DHT advertisements",
		Long:  "Find agents offering SERVICE. Only advertisements whose signature, onion address and expiry verify are shown; the others are dropped and counted. --json prints the array of advertisements.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Minute)
			defer cancel()
			c := apiClient()
			res, err := c.Discover(ctx, args[0])
			if err != nil {
				return err
			}
			if res.Dropped > 0 {
				fmt.Fprintf(g.stderr, "dropped %d unverifiable advertisement(s): %s\n", res.Dropped, strings.Join(res.DropErrors, "; "))
			}
			var conns []localapi.ConnectResult
			if connect {
				for _, ad := range res.Ads {
					r, err := c.Connect(ctx, ad.OnionAddress)
					if err != nil {
						fmt.Fprintf(g.stderr, "connect %s: %v\n", ad.OnionAddress, err)
						continue
					}
					conns = append(conns, r)
				}
			}
			ads := res.Ads
			if ads == nil {
				ads = []localapi.Advertisement{}
			}
			return g.emit(ads, func(w io.Writer) {
				if len(ads) == 0 {
					fmt.Fprintf(w, "no agent offers %q yet (%.1fs)\n", args[0], res.DurationMs/1000)
				}
				for _, ad := range ads {
					fmt.Fprintf(w, "%s  %-24s age %5.0fs  %s\n", ad.OnionAddress, strings.Join(ad.Services, ","), ad.AgeSeconds, ad.PeerID)
				}
				for _, r := range conns {
					fmt.Fprintf(w, "connected %s rtt %.1f ms\n", r.PeerID, r.RTTMillis)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&connect, "connect", false, "connect to every agent found")
	return cmd
}

func newRotateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Use new Tor circuits for new connections (SIGNAL NEWNYM; tor allows one per 10 s)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := apiClient().Rotate(cmd.Context())
			if err != nil {
				return err
			}
			return g.emit(r, func(w io.Writer) {
				if r.DeferredMs > 0 {
					fmt.Fprintf(w, "new circuits requested (waited %.1fs for tor's 10 s rate limit)\n", r.DeferredMs/1000)
					return
				}
				fmt.Fprintln(w, "new circuits requested")
			})
		},
	}
}
