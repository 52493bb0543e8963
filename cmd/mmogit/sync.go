package main

import (
	"sync"

	"context"
	"fmt"
	"github.com/schollz/progressbar/v3"
	"io"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newSyncCmd, newPeersCmd) }

func newSyncCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sync [PEER]",
		Short: "Sync memories with one peer (peer ID, onion address or multiaddr) or with every trusted peer",
		Long: `Exchange signed messages with peers through the running agent. Each side
receives only what it lacks and what the other lets it have; every received
message's signature is checked before it is stored.

With no PEER, syncs with every peer in the trust list (mmogit trust list) and
every recipient of your own encrypted posts, a few at a time (tor.json
"sync": {"concurrency": 4}). Agents found by discovery are synced only when
named.

What moves is decided by the trust list on each side: a peer without the
read role receives only your --public posts (and your posts addressed to it
with --to); a peer without the write role stores nothing here, and what it
offered is counted as "refused".`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			peer := ""
			if len(args) == 1 {
				peer = args[0]
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Minute)
			defer cancel()
			rs, err := syncWithBar(ctx, peer)
			if err != nil {
				return err
			}
			sum := localapi.Summarize(rs)
			err = g.emit(sum, func(w io.Writer) {
				if len(sum.Peers) == 0 {
					fmt.Fprintln(w, "no trusted peers; add one with `mmogit trust add ADDRESS --read --write` (or `mmogit join INVITE`), or name a peer: `mmogit sync ADDRESS`")
				}
				for _, r := range sum.Peers {
					if r.Error != "" {
						fmt.Fprintf(w, "%s  FAILED (%s): %s", r.PeerID, r.ErrorKind, r.Error)
						if r.Received > 0 || r.Sent > 0 || r.Rejected > 0 || r.Refused > 0 {
							fmt.Fprintf(w, " (before failing: received %d, sent %d, rejected %d, refused %d)", r.Received, r.Sent, r.Rejected, r.Refused)
						}
						fmt.Fprintln(w)
						continue
					}
					fmt.Fprintf(w, "%s  received %d, sent %d, rejected %d, refused %d, %d/%d bytes in %.0f ms\n",
						r.PeerID, r.Received, r.Sent, r.Rejected, r.Refused, r.BytesRecv, r.BytesSent, r.DurationMs)
				}
				if len(sum.Peers) > 1 {
					fmt.Fprintf(w, "total: %d peers (%d failed), received %d, sent %d, rejected %d, refused %d\n",
						len(sum.Peers), sum.Failed, sum.Received, sum.Sent, sum.Rejected, sum.Refused)
				}
			})
			if err == nil && sum.Failed > 0 && sum.Failed == len(sum.Peers) {
				return &exitError{code: exitAgentFailure}
			}
			return err
		},
	}
}

func newPeersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List known peers with their addresses, transport, last-seen and last-sync time, and trust roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := apiClient().Peers(cmd.Context())
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []localapi.Peer{}
			}
			return g.emit(ps, func(w io.Writer) {
				if len(ps) == 0 {
					fmt.Fprintln(w, "no known peers")
				}
				for _, p := range ps {
					state := "offline"
					if p.Connected {
						state = "connected"
					}
					seen := "never"
					if p.Connected {
						seen = "now"
					} else if !p.LastSeen.IsZero() {
						seen = time.Since(p.LastSeen).Round(time.Second).String() + " ago"
					}
					synced := "never synced"
					if !p.LastSync.IsZero() {
						synced = "synced " + time.Since(p.LastSync).Round(time.Second).String() + " ago"
						if c := p.LastSyncCounts; c != nil {
							synced += fmt.Sprintf(" (%d received, %d sent, %d rejected, %d refused)", c.Received, c.Sent, c.Rejected, c.Refused)
						}
					}
					fmt.Fprintf(w, "%s  %-9s %-6s seen %s  %s  trust %s  %v\n", p.PeerID, state, p.Transport, seen, synced, rolesText(p.Read, p.Write), p.Addrs)
				}
			})
		},
	}
}

// syncWithBar syncs through the agent; for humans on a terminal it draws a
// progress bar once a transfer is large enough to be worth watching.
func syncWithBar(ctx context.Context, peer string) ([]localapi.SyncResult, error) {
	if g.json {
		return apiClient().Sync(ctx, peer)
	}
	g.infof("syncing...\n")
	var bar *progressbar.ProgressBar
	var mu sync.Mutex // mu guards bar and per
	per := map[string]localapi.SyncProgress{}
	rs, err := apiClient().SyncWithProgress(ctx, peer, func(p localapi.SyncProgress) {
		mu.Lock()
		defer mu.Unlock()
		per[p.PeerID] = p
		got, want := 0, 0
		for _, q := range per {
			got, want = got+q.Received, want+q.Wanted
		}
		if bar == nil && want >= 200 && isTerminal(g.stderr) {
			bar = progressbar.NewOptions(want, progressbar.OptionSetWriter(g.stderr),
				progressbar.OptionSetDescription("memories"), progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
		}
		if bar != nil {
			bar.ChangeMax(want)
			bar.Set(got)
		}
	})
	if bar != nil {
		bar.Finish()
	}
	return rs, err
}
