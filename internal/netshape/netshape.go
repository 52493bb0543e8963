// Package netshape is a user-space TCP shaper: it listens on one address,
// forwards every accepted connection to a target, and makes the forwarded
// bytes pay what a wide-area link would charge — one-way latency with
// jitter, a bandwidth cap — and, on request, fail the way real links do
// (connections reset mid-stream, the whole endpoint gone for a while).
//
// internal/testnet puts one Shaper in front of every relay's and
// authority's ORPort so that every hop of every circuit of the private Tor
// network pays (the kernel's netem is not available on the machines this
// runs on, so shaping has to happen in user space).
//
// Why our own and not toxiproxy (github.com/Shopify/toxiproxy/v2): the
// network needs four things toxiproxy does not give as such —
//   - one rate shared by all connections through a relay (a relay's
//     bandwidth, as tor's BandwidthRate is), where toxiproxy's bandwidth
//     toxic limits each connection on its own;
//   - latency per chunk with a delivery time that never decreases within a
//     connection, so jitter never reorders bytes or stalls tor's TLS
//     handshake in ways a real link would not;
//   - deterministic, seeded jitter and fault choices, so a failing run can
//     be repeated;
//   - a relay that goes away and comes back (SetDown) on the same port.
//
// The whole shaper is a few hundred lines with no dependencies beyond the
// standard library, which is less to trust than a proxy server library.
//
// Model: for each direction of each connection, a reader stamps every chunk
// it reads with deliver = max(now + Latency + jitter, previous deliver) and
// queues it (at most QueueBytes buffered per direction, so a slow link
// pushes back on the sender rather than hiding megabytes in the shaper); a
// writer waits until the delivery time, then for the shared token bucket of
// that direction, then writes. Nothing here holds keys or secrets: the
// bytes forwarded are tor's TLS and are never inspected.
package netshape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config is how one Shaper treats the bytes it forwards. The zero Config
// forwards unchanged.
type Config struct {
	// Latency is the one-way delay added in each direction, so a round
	// trip through the shaper costs 2×Latency more.
	Latency time.Duration `json:"latency"`
	// Jitter spreads each chunk's delay uniformly over
	// [Latency-Jitter, Latency+Jitter] (never below 0). Bytes are never
	// reordered: a chunk is never delivered before the one read before it.
	Jitter time.Duration `json:"jitter"`
	// Rate caps the bytes per second in each direction, shared by every
	// connection through this shaper. 0 means no cap.
	Rate int64 `json:"rate"`
	// Seed makes jitter and fault choices repeatable.
	Seed uint64 `json:"seed"`
	// ResetFraction is the fraction (0–1) of connections reset mid-stream:
	// each chosen connection is reset (RST on both sides) once a uniformly
	// drawn number of bytes in [1, ResetAfter] has crossed it.
	ResetFraction float64 `json:"reset_fraction,omitempty"`
	// ResetAfter bounds the byte count at which a chosen connection is
	// reset; 0 means 256 KiB.
	ResetAfter int64 `json:"reset_after,omitempty"`
}

// Validate reports a Config that cannot be applied, naming the field.
func (c Config) Validate() error {
	switch {
	case c.Latency < 0:
		return fmt.Errorf("netshape: latency %v is negative", c.Latency)
	case c.Jitter < 0:
		return fmt.Errorf("netshape: jitter %v is negative", c.Jitter)
	case c.Rate < 0:
		return fmt.Errorf("netshape: rate %d is negative", c.Rate)
	case c.ResetFraction < 0 || c.ResetFraction > 1:
		return fmt.Errorf("netshape: reset_fraction %v is outside 0–1", c.ResetFraction)
	case c.ResetAfter < 0:
		return fmt.Errorf("netshape: reset_after %d is negative", c.ResetAfter)
	}
	return nil
}

// chunkSize is the most one read forwards as one delayed unit: a full TLS
// record, so that latency is paid per record as on a real link.
const chunkSize = 16 << 10

// queueBytes bounds what one direction of one connection holds in flight
// inside the shaper: ~100 ms at the capped rate, at least 64 KiB, and
// without a cap 1 MiB (enough for any loopback bandwidth-delay product).
func (c Config) queueBytes() int {
	if c.Rate == 0 {
		return 1 << 20
	}
	return max(64<<10, int(c.Rate/10))
}

// Stats counts what a Shaper did.
type Stats struct {
	Accepted int64 `json:"accepted"` // connections accepted
	Active   int64 `json:"active"`   // connections open now
	Reset    int64 `json:"reset"`    // connections reset mid-stream by ResetFraction
	Dropped  int64 `json:"dropped"`  // open connections reset by SetDown(true)
	Refused  int64 `json:"refused"`  // connections refused while down
	Bytes    int64 `json:"bytes"`    // bytes forwarded, both directions
}

// ErrClosed is returned by operations on a closed Shaper.
var ErrClosed = errors.New("netshape: shaper closed")

// Shaper forwards connections from its listener to a target.
type Shaper struct {
	cfg    Config
	target string
	ln     net.Listener
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	up, down *bucket // toward the target, back from it

	rngMu sync.Mutex
	rng   *rand.Rand

	mu        sync.Mutex
	conns     map[*conn]struct{}
	isDn      bool
	resetFrac float64 // starts as cfg.ResetFraction; SetResetFraction changes it

	accepted, active, reset, dropped, refused, bytes atomic.Int64
}

// Listen starts a Shaper on addr ("127.0.0.1:0" for any port) that
// forwards to target. It runs until ctx ends or Close is called.
func Listen(ctx context.Context, addr, target string, cfg Config, log *slog.Logger) (*Shaper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ResetAfter == 0 {
		cfg.ResetAfter = 256 << 10
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("netshape: listen %s: %w", addr, err)
	}
	s := &Shaper{
		cfg: cfg, target: target, ln: ln, log: log,
		up: newBucket(cfg.Rate), down: newBucket(cfg.Rate),
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		conns: map[*conn]struct{}{}, resetFrac: cfg.ResetFraction,
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() {
		<-s.ctx.Done()
		ln.Close()
		s.closeConns() // the caller's ctx ending alone also ends them
	})
	s.wg.Go(s.acceptLoop)
	return s, nil
}

// Addr is the address the shaper listens on, "127.0.0.1:port".
func (s *Shaper) Addr() string { return s.ln.Addr().String() }

// Target is where the shaper forwards to.
func (s *Shaper) Target() string { return s.target }

// Stats returns the shaper's counters.
func (s *Shaper) Stats() Stats {
	return Stats{Accepted: s.accepted.Load(), Active: s.active.Load(), Reset: s.reset.Load(),
		Dropped: s.dropped.Load(), Refused: s.refused.Load(), Bytes: s.bytes.Load()}
}

// SetDown(true) makes the endpoint go away: every open connection is reset
// and new ones are reset as soon as they are accepted, as if the relay had
// crashed. SetDown(false) brings it back on the same port.
func (s *Shaper) SetDown(down bool) {
	s.mu.Lock()
	s.isDn = down
	var victims []*conn
	if down {
		for c := range s.conns {
			victims = append(victims, c)
		}
	}
	s.mu.Unlock()
	s.dropped.Add(int64(len(victims)))
	for _, c := range victims {
		c.abort()
	}
	s.log.Debug("netshape: down", "addr", s.Addr(), "down", down, "reset", len(victims))
}

// SetResetFraction changes Config.ResetFraction for connections accepted
// from now on (f is clamped to 0–1).
func (s *Shaper) SetResetFraction(f float64) {
	s.mu.Lock()
	s.resetFrac = min(max(f, 0), 1)
	s.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for all of the
// shaper's goroutines to end.
func (s *Shaper) Close() error {
	s.cancel()
	s.closeConns()
	s.wg.Wait()
	return nil
}

func (s *Shaper) closeConns() {
	s.mu.Lock()
	var all []*conn
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}

func (s *Shaper) acceptLoop() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Debug("netshape: accept", "addr", s.Addr(), "err", err)
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		down := s.isDn
		s.mu.Unlock()
		if down {
			s.refused.Add(1)
			resetClose(nc)
			continue
		}
		s.wg.Go(func() { s.serve(nc) })
	}
}

// draw returns a uniform float in [0,1) from the shaper's seeded source.
func (s *Shaper) draw() float64 {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.Float64()
}

// delay is one chunk's one-way delay.
func (s *Shaper) delay() time.Duration {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		d += time.Duration((2*s.draw() - 1) * float64(s.cfg.Jitter))
	}
	return max(d, 0)
}

func (s *Shaper) serve(client net.Conn) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	server, err := d.DialContext(ctx, "tcp", s.target)
	cancel()
	if err != nil {
		// The target is not listening: the client sees what it would see
		// without the shaper, a connection that ends at once.
		s.log.Debug("netshape: dial target", "target", s.target, "err", err)
		resetClose(client)
		return
	}
	c := &conn{s: s, client: client, server: server, resetAt: -1}
	s.mu.Lock()
	frac := s.resetFrac
	s.mu.Unlock()
	if frac > 0 && s.draw() < frac {
		c.resetAt = 1 + int64(s.draw()*float64(s.cfg.ResetAfter))
	}
	s.mu.Lock()
	if s.isDn || s.ctx.Err() != nil {
		s.mu.Unlock()
		resetClose(client)
		resetClose(server)
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.active.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.active.Add(-1)
	}()
	var wg sync.WaitGroup
	wg.Go(func() { c.pipe(client, server, s.up) })
	wg.Go(func() { c.pipe(server, client, s.down) })
	wg.Wait()
	c.close()
}

// conn is one forwarded connection.
type conn struct {
	s              *Shaper
	client, server net.Conn
	resetAt        int64 // bytes after which to reset; -1 never
	moved          atomic.Int64
	closeOnce      sync.Once
	doneHalf       atomic.Int32
}

// chunk is one read, due at deliver.
type chunk struct {
	b       []byte
	deliver time.Time
}

// pipe forwards src to dst with the shaper's delay and dst's bucket. When
// src ends cleanly, dst's write side is closed once everything queued is
// delivered (a half-close crosses the shaper as it would a link).
func (c *conn) pipe(src, dst net.Conn, b *bucket) {
	q := make(chan chunk, max(4, c.s.cfg.queueBytes()/chunkSize))
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(q)
		var last time.Time
		for {
			buf := make([]byte, chunkSize)
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now().Add(c.s.delay())
				if at.Before(last) {
					at = last // never overtake the chunk before
				}
				last = at
				select {
				case q <- chunk{buf[:n], at}:
				case <-c.s.ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
	clean := true
	for ch := range q {
		if !sleepUntil(c.s.ctx, ch.deliver) {
			clean = false
			break
		}
		if !sleep(c.s.ctx, b.take(len(ch.b))) {
			clean = false
			break
		}
		if _, err := dst.Write(ch.b); err != nil {
			clean = false
			break
		}
		c.s.bytes.Add(int64(len(ch.b)))
		if n := c.moved.Add(int64(len(ch.b))); c.resetAt > 0 && n >= c.resetAt {
			c.s.reset.Add(1)
			c.s.log.Debug("netshape: injected reset", "addr", c.s.Addr(), "after_bytes", n)
			c.abort()
			clean = false
			break
		}
	}
	if clean {
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		if c.doneHalf.Add(1) < 2 {
			// The other direction may still be talking; wait for it.
			for range q {
			}
			wg.Wait()
			return
		}
	}
	c.close()
	// Unblock the reader (closed src) and drain so it can exit.
	go func() {
		for range q {
		}
	}()
	wg.Wait()
}

// abort resets both sides: the peers see ECONNRESET, as when a link or a
// relay dies mid-stream.
func (c *conn) abort() {
	c.closeOnce.Do(func() {
		resetClose(c.client)
		resetClose(c.server)
	})
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.client.Close()
		c.server.Close()
	})
}

// resetClose closes nc with an RST instead of a FIN.
func resetClose(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	nc.Close()
}

func sleepUntil(ctx context.Context, t time.Time) bool { return sleep(ctx, time.Until(t)) }

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// bucket is a token bucket in bytes shared by every connection of one
// direction. take reserves tokens and may run into debt, which later
// callers pay off by waiting: bytes are admitted at Rate on average.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // bytes per second; 0 = unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate int64) *bucket {
	// A 50 ms burst (at least one chunk) lets a lone TLS record through
	// without waiting while still holding the average.
	burst := max(float64(chunkSize), float64(rate)/20)
	return &bucket{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

// take reserves n bytes and returns how long the caller must wait before
// sending them.
func (b *bucket) take(n int) time.Duration {
	if b.rate == 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

var _ io.Closer = (*Shaper)(nil)
