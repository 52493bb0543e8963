// Package calibrate measures raw tor — no mmogit code on the path — on a
// private Tor network, to check that a testnet.Profile looks like the
// network it stands for:
//
//   - new_conn: SOCKS connect to an onion service the client has never
//     seen (descriptor fetch, introduction, rendezvous) until the first
//     byte comes back from its echo server;
//   - rtt: one byte echoed on an established rendezvous circuit (median of
//     several);
//   - bulk: MB/s of one stream downloading from the service.
//
// The services run on a second tor joined to the network (as an agent's
// would), the dials go through the network's own client, so every
// circuit crosses the shaped relays. Service keys are throw-away ed25519
// keys made here and handed to tor over its control socket only.
package calibrate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/tor"
)

// Range is an inclusive target range.
type Range struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

func (r Range) contains(v float64) bool { return v >= r.Min && v <= r.Max }

// Targets are what raw tor should measure on a profile: the public Tor
// network's figures for public (issue 10), with ~100 KB/s for slow.
type Targets struct {
	NewConnS Range `json:"new_conn_s"`
	RTTS     Range `json:"rtt_s"`
	BulkMBps Range `json:"bulk_mb_s"`
}

// TargetsFor returns the targets of p; loopback has none (ok is false).
func TargetsFor(p testnet.Profile) (t Targets, ok bool) {
	lat := Targets{NewConnS: Range{1.5, 5}, RTTS: Range{0.3, 1}}
	switch p {
	case testnet.ProfilePublic:
		lat.BulkMBps = Range{0.5, 2}
		return lat, true
	case testnet.ProfileSlow:
		lat.BulkMBps = Range{0.05, 0.15}
		return lat, true
	}
	return Targets{}, false
}

// Stat summarises the samples of one measurement.
type Stat struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
	// InRange is set when the profile has targets: the median lies in
	// the target range.
	InRange *bool `json:"in_range,omitempty"`
}

func stat(xs []float64) Stat {
	s := slices.Clone(xs)
	slices.Sort(s)
	st := Stat{Samples: xs}
	if len(s) > 0 {
		st.Min, st.Max = s[0], s[len(s)-1]
		st.Median = s[len(s)/2]
		if len(s)%2 == 0 {
			st.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
		}
	}
	return st
}

// Result is one calibration run.
type Result struct {
	Profile  testnet.Profile `json:"profile"`
	Link     string          `json:"link"` // the profile's shaping per relay
	NewConnS Stat            `json:"new_conn_s"`
	RTTS     Stat            `json:"rtt_s"`
	BulkMBps Stat            `json:"bulk_mb_s"`
	BulkSize int64           `json:"bulk_bytes"`
	Targets  *Targets        `json:"targets,omitempty"`
	InRange  *bool           `json:"in_range,omitempty"` // all three medians
	TookS    float64         `json:"took_s"`
}

// Options configure Run.
type Options struct {
	// Network is the running network to measure (its Info); Profile is
	// taken from it.
	Network testnet.Info
	// Dir holds the service tor's data directory.
	Dir string
	// Rounds is the number of samples of new_conn and bulk (default 5);
	// rtt takes 4× as many.
	Rounds int
	// BulkBytes is the size of each bulk download; 0 picks 4 MiB, or
	// 1 MiB on the slow profile.
	BulkBytes int64
	// Progress, if set, receives short progress lines.
	Progress func(string)
}

// Run measures raw tor on the network.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	if o.BulkBytes <= 0 {
		o.BulkBytes = 4 << 20
		if o.Network.Profile == testnet.ProfileSlow {
			o.BulkBytes = 1 << 20
		}
	}
	progress := func(f string, a ...any) {
		if o.Progress != nil {
			o.Progress(fmt.Sprintf(f, a...))
		}
	}
	srv, err := newServer()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	d, err := tor.Start(ctx, tor.Config{DataDir: filepath.Join(o.Dir, "calibrate-tor"), ExtraTorrc: o.Network.ClientTorrc})
	if err != nil {
		return nil, fmt.Errorf("calibrate: service tor: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.Stop(sctx)
		cancel()
	}()
	progress("service tor joined; publishing %d fresh onion services", o.Rounds)
	// One fresh service per new_conn sample, all published up front so that
	// each dial is the client's first contact with that address.
	hosts := make([]string, o.Rounds)
	var (
		wg   sync.WaitGroup
		errs = make([]error, o.Rounds)
	)
	for i := range hosts {
		wg.Go(func() { hosts[i], errs[i] = publish(ctx, d, srv.Addr()) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r := &Result{Profile: o.Network.Profile, BulkSize: o.BulkBytes}
	if r.Profile == "" {
		r.Profile = testnet.ProfileLoopback
	}
	r.Link = "unshaped"
	if l := r.Profile.Link(); r.Profile.Shaped() {
		r.Link = fmt.Sprintf("one-way %v±%v per hop, %d B/s per relay", l.Latency, l.Jitter, l.Rate)
	}
	var conns, rtts, bulks []float64
	for i, h := range hosts {
		c, took, err := newConn(ctx, o.Network.Socks, h)
		if err != nil {
			return nil, err
		}
		conns = append(conns, took.Seconds())
		progress("new_conn %d/%d: %.2fs", i+1, o.Rounds, took.Seconds())
		for range 4 {
			d, err := echo(c)
			if err != nil {
				c.Close()
				return nil, err
			}
			rtts = append(rtts, d.Seconds())
		}
		mbps, err := bulk(c, o.BulkBytes)
		c.Close()
		if err != nil {
			return nil, err
		}
		bulks = append(bulks, mbps)
		progress("bulk %d/%d: %.3f MB/s", i+1, o.Rounds, mbps)
	}
	r.NewConnS, r.RTTS, r.BulkMBps = stat(conns), stat(rtts), stat(bulks)
	if t, ok := TargetsFor(r.Profile); ok {
		r.Targets = &t
		a, b, c := t.NewConnS.contains(r.NewConnS.Median), t.RTTS.contains(r.RTTS.Median), t.BulkMBps.contains(r.BulkMBps.Median)
		r.NewConnS.InRange, r.RTTS.InRange, r.BulkMBps.InRange = &a, &b, &c
		all := a && b && c
		r.InRange = &all
	}
	r.TookS = time.Since(start).Seconds()
	return r, nil
}

func publish(ctx context.Context, d *tor.Daemon, target string) (string, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("calibrate: %w", err)
	}
	svc, err := d.Publish(ctx, tor.ServiceConfig{Key: key, VirtualPort: 80, Target: target})
	if err != nil {
		return "", fmt.Errorf("calibrate: %w", err)
	}
	if err := svc.WaitPublished(ctx); err != nil {
		return "", fmt.Errorf("calibrate: %w", err)
	}
	return svc.Hostname(), nil
}

// newConn dials host with a never-used SOCKS credential (so tor builds a
// new rendezvous) and returns once the first byte came back. A dial that
// fails because the descriptor is not on the HSDirs yet is retried,
// untimed.
func newConn(ctx context.Context, socksAddr, host string) (net.Conn, time.Duration, error) {
	for attempt := 1; ; attempt++ {
		iso := make([]byte, 16)
		rand.Read(iso)
		dl := &socks.Dialer{ProxyAddr: socksAddr, Isolation: hex.EncodeToString(iso), Timeout: 2 * time.Minute}
		t0 := time.Now()
		c, err := dl.DialContext(ctx, "tcp", net.JoinHostPort(host, "80"))
		if err == nil {
			if _, err = echo(c); err == nil {
				return c, time.Since(t0), nil
			}
			c.Close()
		}
		if !errors.Is(err, socks.ErrOnionServiceUnreachable) || attempt == 5 {
			return nil, 0, fmt.Errorf("calibrate: connect %s: %w", host, err)
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// The server's protocol: 'e' is echoed back; 'b' followed by a big-endian
// uint64 n is answered with n bytes.
func echo(c net.Conn) (time.Duration, error) {
	c.SetDeadline(time.Now().Add(time.Minute))
	defer c.SetDeadline(time.Time{})
	t0 := time.Now()
	if _, err := c.Write([]byte{'e'}); err != nil {
		return 0, fmt.Errorf("calibrate: echo: %w", err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'e' {
		return 0, fmt.Errorf("calibrate: echo: got %q: %w", b, err)
	}
	return time.Since(t0), nil
}

// bulk downloads n bytes and returns MB/s (10^6 bytes) from request to
// last byte.
func bulk(c net.Conn, n int64) (float64, error) {
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	defer c.SetDeadline(time.Time{})
	req := make([]byte, 9)
	req[0] = 'b'
	binary.BigEndian.PutUint64(req[1:], uint64(n))
	t0 := time.Now()
	if _, err := c.Write(req); err != nil {
		return 0, fmt.Errorf("calibrate: bulk: %w", err)
	}
	got, err := io.CopyN(io.Discard, c, n)
	if err != nil {
		return 0, fmt.Errorf("calibrate: bulk: %d of %d bytes: %w", got, n, err)
	}
	return float64(n) / time.Since(t0).Seconds() / 1e6, nil
}

// server is the onion services' local end.
type server struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newServer() (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("calibrate: %w", err)
	}
	s := &server{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { defer c.Close(); serve(c) })
		}
	})
	return s, nil
}

func (s *server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting; connections end when their clients close them.
func (s *server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func serve(c net.Conn) {
	buf := make([]byte, 32<<10)
	op := make([]byte, 1)
	for {
		if _, err := io.ReadFull(c, op); err != nil {
			return
		}
		switch op[0] {
		case 'e':
			if _, err := c.Write(op); err != nil {
				return
			}
		case 'b':
			nb := make([]byte, 8)
			if _, err := io.ReadFull(c, nb); err != nil {
				return
			}
			for n := int64(binary.BigEndian.Uint64(nb)); n > 0; {
				k := min(n, int64(len(buf)))
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
				n -= k
			}
		default:
			return
		}
	}
}
