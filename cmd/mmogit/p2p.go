package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/refwire"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/syncproto"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newP2PCmd) }

// newP2PCmd is the direct mode, as in the reference mmogit: over a plain
// TCP connection, for users who chose direct transport, either mmogit's
// sync protocol or (--wire reference) the reference's own handshake
// frames (package refwire). Peers see each other's IP addresses; use
// `mmogit tor …` for anonymity.
func newP2PCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "p2p",
		Short: "Direct (non-Tor) sync over TCP; peers see your IP address",
		Long: `Direct (non-Tor) connections over TCP; peers see your IP address.

Two protocols share this path. mmogit's sync protocol (/mmogit/sync/1.0.0
framing, see internal/syncproto) exchanges memories; it is not the reference
mmogit's. --wire reference speaks the reference (Rust) mmogit's own
NetworkMessage frames, Hello/Ping/Pong/Bye (and MemoryRequest/MemoryResponse),
so a reference node completes a session with mmogit in either direction; the
reference answers no MemoryRequest, so no memories move that way with it.
` + "`p2p listen`" + ` tells the two apart by the first frame (--wire auto).`,
	}
	var port int
	var once, direct bool
	var listenWire, connectWire, request string // separate: StringVar stores its default
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
			if listenWire != "auto" && listenWire != "mmogit" && listenWire != "reference" {
				return &usageError{fmt.Errorf("--wire %q: want auto, mmogit or reference", listenWire)}
			}
			return p2pListen(ctx, port, once, listenWire)
		},
	}
	listen.Flags().StringVar(&listenWire, "wire", "auto", "protocol: mmogit (this project's sync), reference (the Rust mmogit's NetworkMessage: Hello/Ping/Pong/Bye) or auto (told apart by the peer's first frame)")
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
			if connectWire != "mmogit" && connectWire != "reference" {
				return &usageError{fmt.Errorf("--wire %q: want mmogit or reference", connectWire)}
			}
			if request != "" && connectWire != "reference" {
				return &usageError{errors.New("--request needs --wire reference")}
			}
			return p2pConnect(cmd.Context(), args[0], connectWire, request)
		},
	}
	connect.Flags().StringVar(&connectWire, "wire", "mmogit", "protocol: mmogit (this project's sync) or reference (the Rust mmogit's p2p handshake)")
	connect.Flags().StringVar(&request, "request", "", "with --wire reference: also send MemoryRequest with this filter and store the verified messages of the answer (the reference 02b9154 never answers)")
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
	Wire       string  `json:"wire"` // "mmogit" or "reference"
	Pubkey     string  `json:"pubkey,omitempty"`
	Sent       int     `json:"sent"`
	Received   int     `json:"received"`
	Rejected   int     `json:"rejected"`
	Refused    int     `json:"refused"`
	BytesSent  int64   `json:"bytes_sent"`
	BytesRecv  int64   `json:"bytes_received"`
	DurationMs float64 `json:"duration_ms"`
	// With the reference wire: the frames each way, in order.
	FramesSent     []string `json:"frames_sent,omitempty"`
	FramesReceived []string `json:"frames_received,omitempty"`
}

func p2pListen(ctx context.Context, port int, once bool, wire string) error {
	id, st, err := openStore(ctx)
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
	return serveSessions(ctx, ln, p2pMaxSessions, p2pSessionTimeout, once, func(ctx context.Context, c net.Conn) {
		r, err := serveDirect(ctx, c, st, id.Private, wire)
		if err != nil {
			fmt.Fprintf(g.stderr, "sync with %s failed: %v\n", c.RemoteAddr(), err)
			return
		}
		g.emit(r, func(w io.Writer) { printP2P(w, r) })
	})
}

// serveSessions runs handle for each connection ln accepts until ctx ends
// (after the first with once). Anyone who can reach the port can open
// sessions, so at most max run at once (more are closed at accept) and
// each is closed after timeout: idle or endless peers (a Ping every few
// seconds keeps a session from idling out) cannot pile up.
func serveSessions(ctx context.Context, ln net.Listener, max int, timeout time.Duration, once bool, handle func(context.Context, net.Conn)) error {
	slots := make(chan struct{}, max)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		select {
		case slots <- struct{}{}:
		default:
			fmt.Fprintf(g.stderr, "refused %s: %d sessions already running\n", c.RemoteAddr(), max)
			c.Close()
			continue
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			defer func() { <-slots }()
			defer c.Close()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			context.AfterFunc(ctx, func() { c.Close() })
			handle(ctx, c)
		}()
		if once {
			<-done
			return nil
		}
	}
}

// Bounds of `p2p listen`: sessions at once, and how long one may last.
const (
	p2pMaxSessions    = 16
	p2pSessionTimeout = 30 * time.Minute
)

func p2pConnect(ctx context.Context, addr, wire, request string) error {
	id, st, err := openStore(ctx)
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
	var r p2pResult
	if wire == "reference" {
		r, err = refSession(ctx, c, st, id.Private, false, nil, request)
	} else {
		r, err = directSync(ctx, c, st, id.Private)
	}
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
	quota, err := p2pQuota()
	if err != nil {
		return p2pResult{}, err
	}
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
		Peer: c.RemoteAddr().String(), Pubkey: stats.PeerKey, Wire: "mmogit",
		Sent: stats.MessagesSent, Received: stats.Added, Rejected: stats.Rejected, Refused: stats.Refused,
		BytesSent: stats.BytesSent, BytesRecv: stats.BytesReceived, DurationMs: ms(time.Since(start)),
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// serveDirect runs the listener's side of one connection with the chosen
// wire; auto reads the first frame to choose (both protocols start with a
// 4-byte length and a JSON body; only the reference's has an array
// payload) and replays it to mmogit's sync.
func serveDirect(ctx context.Context, c net.Conn, st *memory.Store, priv ed25519.PrivateKey, wire string) (p2pResult, error) {
	switch wire {
	case "mmogit":
		return directSync(ctx, c, st, priv)
	case "reference":
		return refSession(ctx, c, st, priv, true, nil, "")
	}
	c.SetReadDeadline(time.Now().Add(refwire.IdleTimeout))
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	body, err := refwire.ReadFrame(c)
	stop()
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return p2pResult{}, fmt.Errorf("read first frame: %w", err)
	}
	if m, err := refwire.Unmarshal(body); err == nil {
		return refSession(ctx, c, st, priv, true, &m, "")
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(body)))
	replay := io.MultiReader(bytes.NewReader(head[:]), bytes.NewReader(body), c)
	return directSync(ctx, replayConn{Conn: c, r: replay}, st, priv)
}

// p2pQuota is the write quota of this process's direct sessions, one for
// all of them, so that a writer cannot reset its day by reconnecting.
var p2pQuota = sync.OnceValues(func() (*trust.Quota, error) {
	cfg := config.Default()
	if _, err := os.Stat(filepath.Join(g.configDir, config.FileName)); err == nil {
		if cfg, err = config.Load(g.configDir); err != nil {
			return nil, err
		}
	}
	return trust.NewQuota(cfg.Sync.QuotaMessages, cfg.Sync.QuotaBytes), nil
})

// replayConn reads what was already read from Conn before the rest.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// refSession talks the reference mmogit's NetworkMessage on c: as the
// listener (serve, with first the peer's frame already read, if any) or as
// the connector. Its Hello is an unproven claim, so what it is shown and what
// is kept from it are limited accordingly: it may read this identity's
// public (unencrypted) messages; of what it sends, only validly signed
// messages by this identity or by peers in the trust list are stored.
func refSession(ctx context.Context, c net.Conn, st *memory.Store, priv ed25519.PrivateKey, serve bool, first *refwire.Message, request string) (p2pResult, error) {
	start := time.Now()
	self := hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	res := p2pResult{Peer: c.RemoteAddr().String(), Wire: "reference"}
	opts := refwire.Options{
		Pubkey:  self,
		Request: request,
		Share: func(string) ([]byte, error) {
			es, err := st.All(ctx)
			if err != nil {
				return nil, err
			}
			out := []memory.Message{}
			for _, e := range es {
				if e.Valid && e.Message.Author == self && !seal.IsSealed(e.Message.Content) {
					out = append(out, e.Message)
				}
			}
			res.Sent += len(out)
			return json.Marshal(out)
		},
		Receive: func(b []byte) error {
			var msgs []memory.Message
			if err := json.Unmarshal(b, &msgs); err != nil {
				return fmt.Errorf("MemoryResponse: want a JSON array of signed messages: %w", err)
			}
			l, err := trust.Load(g.configDir)
			if err != nil {
				return err
			}
			quota, err := p2pQuota()
			if err != nil {
				return err
			}
			// The peer's Hello proves nothing, so each message is judged
			// by its author as if that author had sent it: ours are
			// stored, a trusted author's only with the write role and
			// within its quota, anyone else's refused.
			byAuthor := map[string][]memory.Message{}
			var order []string
			for _, m := range msgs {
				if _, seen := byAuthor[m.Author]; !seen {
					order = append(order, m.Author)
				}
				byAuthor[m.Author] = append(byAuthor[m.Author], m)
			}
			for _, author := range order {
				ms := byAuthor[author]
				var ar memory.AddResult
				if author == self {
					ar, err = st.Add(ctx, ms)
				} else if e, ok := l.LookupHex(author); ok {
					v := &trust.View{Store: st, Self: self, Peer: author, Entry: e, Quota: quota}
					ar, err = v.Add(ctx, ms)
				} else {
					ar.Refused = len(ms)
				}
				res.Received += ar.Added
				res.Rejected += ar.Rejected
				res.Refused += ar.Refused
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	var r refwire.Result
	var err error
	if serve {
		r, err = refwire.Serve(ctx, c, first, opts)
	} else {
		r, err = refwire.Connect(ctx, c, opts)
	}
	res.Pubkey, res.FramesSent, res.FramesReceived, res.DurationMs = r.PeerPubkey, r.Sent, r.Received, ms(time.Since(start))
	return res, err
}

func printP2P(w io.Writer, r p2pResult) {
	if r.Wire == "reference" {
		fmt.Fprintf(w, "reference session with %s (claims key %s): sent %s, received %s; messages received %d, sent %d, refused %d (%.0f ms)\n",
			r.Peer, r.Pubkey, strings.Join(r.FramesSent, ","), strings.Join(r.FramesReceived, ","), r.Received, r.Sent, r.Refused, r.DurationMs)
		return
	}
	fmt.Fprintf(w, "synced with %s: received %d, sent %d, rejected %d, refused %d (%d/%d bytes, %.0f ms)\n",
		r.Peer, r.Received, r.Sent, r.Rejected, r.Refused, r.BytesRecv, r.BytesSent, r.DurationMs)
}
