package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newP2PCmd) }

// newP2PCmd is the reference mmogit's direct mode: the sync protocol over a
// plain TCP connection, for users who chose direct transport. Peers see
// each other's IP addresses; use `mmogit tor …` for anonymity.
func newP2PCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "p2p",
		Short: "Direct (non-Tor) sync over TCP, as in the reference mmogit; peers see your IP address",
	}
	var port int
	var once, direct bool
	listen := &cobra.Command{
		Use:   "listen",
		Short: "Accept direct sync connections on TCP --port (default 7420) of --host (default 127.0.0.1)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDirectAllowed("p2p listen", direct); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return p2pListen(ctx, port, once)
		},
	}
	listen.Flags().IntVar(&port, "port", 7420, "TCP port to listen on (0 = any free port)")
	listen.Flags().StringVar(&listenHost, "host", "127.0.0.1", "address to listen on (0.0.0.0 for every interface)")
	listen.Flags().BoolVar(&once, "once", false, "exit after the first sync")
	connect := &cobra.Command{
		Use:   "connect HOST:PORT",
		Short: "Sync directly with a peer listening with `mmogit p2p listen`",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDirectAllowed("p2p connect", direct); err != nil {
				return err
			}
			return p2pConnect(cmd.Context(), args[0])
		},
	}
	for _, c := range []*cobra.Command{listen, connect} {
		c.Flags().BoolVar(&direct, "direct", false, "sync over plain TCP even though tor.json's transport is \"tor\" (the peer sees your IP address)")
	}
	cmd.AddCommand(listen, connect, newDiscoverCmd("discover"))
	return cmd
}

var listenHost string

// checkDirectAllowed refuses direct TCP sync when the configured transport
// is tor (the default), unless the user passed --direct: the peer would see
// this machine's IP address, which is what tor mode promises it never does.
// direct and hybrid are explicit choices of TCP and need no flag.
func checkDirectAllowed(cmd string, force bool) error {
	t, err := configuredTransport()
	if err != nil {
		return err
	}
	if t != config.Tor || force {
		return nil
	}
	return fmt.Errorf("%s: the transport in %s is \"tor\", and a direct TCP sync would show the peer your IP address; "+
		"sync over tor with `mmogit tor start` and `mmogit sync <onion address>`, "+
		"set \"transport\": \"direct\" or \"hybrid\" in tor.json, or pass --direct to sync over TCP anyway",
		cmd, filepath.Join(g.configDir, config.FileName))
}

// configuredTransport is tor.json's global transport; without a tor.json,
// the default (tor). It does not write a tor.json.
func configuredTransport() (config.Transport, error) {
	if _, err := os.Stat(filepath.Join(g.configDir, config.FileName)); errors.Is(err, fs.ErrNotExist) {
		return config.Default().Transport, nil
	}
	c, err := config.Load(g.configDir)
	if err != nil {
		return "", err
	}
	return c.Transport, nil
}

// p2pResult is what direct sync prints under --json.
type p2pResult struct {
	Peer       string  `json:"peer"`
	Pubkey     string  `json:"pubkey,omitempty"`
	Sent       int     `json:"sent"`
	Received   int     `json:"received"`
	Rejected   int     `json:"rejected"`
	Refused    int     `json:"refused"`
	BytesSent  int64   `json:"bytes_sent"`
	BytesRecv  int64   `json:"bytes_received"`
	DurationMs float64 `json:"duration_ms"`
}

func p2pListen(ctx context.Context, port int, once bool) error {
	id, st, err := openStore()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer ln.Close()
	context.AfterFunc(ctx, func() { ln.Close() })
	fmt.Fprintf(g.stderr, "listening for direct sync on %s (peers see your IP address)\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer c.Close()
			r, err := directSync(ctx, c, st, id.Private)
			if err != nil {
				fmt.Fprintf(g.stderr, "sync with %s failed: %v\n", c.RemoteAddr(), err)
				return
			}
			g.emit(r, func(w io.Writer) { printP2P(w, r) })
		}()
		if once {
			<-done
			return nil
		}
	}
}

func p2pConnect(ctx context.Context, addr string) error {
	id, st, err := openStore()
	if err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("p2p connect: %q: want HOST:PORT: %w", addr, err)
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := directSync(ctx, c, st, id.Private)
	if err != nil {
		return err
	}
	return g.emit(r, func(w io.Writer) { printP2P(w, r) })
}

// directSync runs one session over c. What the peer may see and store is
// decided by the trust list once it has proven its key (the summary waits
// for that proof): the same rules as a sync through the agent.
func directSync(ctx context.Context, c net.Conn, st *memory.Store, priv ed25519.PrivateKey) (p2pResult, error) {
	start := time.Now()
	self := hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	cfg := config.Default()
	if _, err := os.Stat(filepath.Join(g.configDir, config.FileName)); err == nil {
		if cfg, err = config.Load(g.configDir); err != nil {
			return p2pResult{}, err
		}
	}
	quota := trust.NewQuota(cfg.Sync.QuotaMessages, cfg.Sync.QuotaBytes)
	access := func(peer ed25519.PublicKey) (syncproto.Syncer, bool, error) {
		l, err := trust.Load(g.configDir)
		if err != nil {
			return nil, true, err
		}
		idx, err := seal.LoadIndex(g.configDir)
		if err != nil {
			return nil, true, err
		}
		e, _ := l.Lookup(peer)
		v := &trust.View{Store: st, Self: self, Peer: hex.EncodeToString(peer), Entry: e, Recipients: idx.Recipients, Quota: quota}
		return v, !v.CanWrite(), nil
	}
	stats, err := syncproto.Sync(ctx, c, nil, syncproto.Options{Identity: priv, RequireAuth: true, Logger: g.log, Access: access})
	if err != nil {
		return p2pResult{}, err
	}
	return p2pResult{
		Peer: c.RemoteAddr().String(), Pubkey: stats.PeerKey,
		Sent: stats.MessagesSent, Received: stats.Added, Rejected: stats.Rejected, Refused: stats.Refused,
		BytesSent: stats.BytesSent, BytesRecv: stats.BytesReceived, DurationMs: ms(time.Since(start)),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func printP2P(w io.Writer, r p2pResult) {
	fmt.Fprintf(w, "synced with %s: received %d, sent %d, rejected %d, refused %d (%d/%d bytes, %.0f ms)\n",
		r.Peer, r.Received, r.Sent, r.Rejected, r.Refused, r.BytesRecv, r.BytesSent, r.DurationMs)
}
