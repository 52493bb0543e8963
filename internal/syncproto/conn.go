package syncproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// deadliner is implemented by net.Conn and friends; with it the idle timeout
// and ctx cancellation also unblock reads and writes in progress.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// conn frames messages over rw and counts bytes.
type conn struct {
	rw      io.ReadWriter
	dl      deadliner // nil if rw has no deadlines
	idle    time.Duration
	max     int
	stop    func() bool // unregisters the ctx watcher
	quit    atomic.Bool // set when the session ends: the reader must stop
	sent    int64
	framesS int
	buf     []byte
	// progress is the unix nanos of the last byte moved either way; the
	// session's idle timer measures from it, so a large frame that keeps
	// arriving never times out.
	progress atomic.Int64
	// byeEnds tells the reader the peer sends nothing after Bye (versions
	// 1 and 2); a version 3 peer still answers requests after its Bye.
	byeEnds atomic.Bool
	ours    int // our protocol version, for the reader's check of Hello
	hop     int // the deepest Hop received, set by the session
}

func newConn(ctx context.Context, rw io.ReadWriter, idle time.Duration, max int) *conn {
	c := &conn{rw: rw, idle: idle, max: max}
	c.touch()
	c.byeEnds.Store(true)
	if d, ok := rw.(deadliner); ok {
		c.dl = d
		// Cancelling ctx unblocks any read or write in progress.
		c.stop = context.AfterFunc(ctx, c.abort)
	} else {
		c.stop = func() bool { return true }
	}
	return c
}

// abort makes blocked reads and writes return at once, if rw has deadlines.
func (c *conn) abort() {
	c.quit.Store(true)
	if c.dl != nil {
		c.dl.SetReadDeadline(time.Unix(1, 0))
		c.dl.SetWriteDeadline(time.Unix(1, 0))
	}
}

// write sends one frame, giving up after the idle timeout. Without deadline
// support the write runs in a goroutine that outlives a timeout until rw is
// closed.
func (c *conn) write(ctx context.Context, m NetworkMessage) error {
	m.Hop = c.hop + 1
	b, err := AppendFrame(c.buf[:0], m, c.max)
	if err != nil {
		return err
	}
	c.buf = b
	if c.dl != nil {
		// The deadline is a no-progress timeout: it moves on with every
		// chunk the peer accepts, so a slow but moving link never fails.
		for rest := b; len(rest) > 0 && err == nil; {
			n := min(len(rest), writeChunk)
			c.dl.SetWriteDeadline(time.Now().Add(c.idle))
			_, err = c.rw.Write(rest[:n])
			rest = rest[n:]
			c.touch()
		}
	} else {
		done := make(chan error, 1)
		cp := append([]byte(nil), b...)
		go func() { _, err := c.rw.Write(cp); done <- err }()
		t := time.NewTimer(c.idle)
		defer t.Stop()
		select {
		case err = <-done:
		case <-t.C:
			err = os.ErrDeadlineExceeded
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("syncproto: send %s: %w", m.Type, ctx.Err())
		}
		if isTimeout(err) {
			return fmt.Errorf("%w: peer stalled: not reading for %v (sending %s)", ErrTimeout, c.idle, m.Type)
		}
		return fmt.Errorf("syncproto: send %s: %w", m.Type, err)
	}
	c.sent += int64(len(b))
	c.framesS++
	return nil
}

// writeChunk is how much one write may move before the no-progress
// deadline is moved on: a peer taking longer than the idle timeout for
// 64 KiB (about 1 KB/s) is stalled.
const writeChunk = 64 << 10

func (c *conn) touch() { c.progress.Store(time.Now().UnixNano()) }

// sinceProgress is how long no byte has moved in either direction.
func (c *conn) sinceProgress() time.Duration {
	return time.Since(time.Unix(0, c.progress.Load()))
}

// progressFloor is the least that counts as progress short of a whole
// frame: a peer dripping a byte now and then (slowloris) makes none, while
// a slow circuit at 1 KB/s makes some every few seconds.
const progressFloor = 4 << 10

// progressReader reads with a deadline of the last progress plus the idle
// timeout, and counts progress: a whole frame (readLoop) or progressFloor
// bytes of one. Reading fails only when no progress is made for the idle
// timeout, however large the frame.
type progressReader struct {
	c    *conn
	part *int // bytes since the last progress
}

func (r progressReader) Read(p []byte) (int, error) {
	c := r.c
	var n int
	var err error
	for {
		if c.dl != nil {
			c.dl.SetReadDeadline(time.Unix(0, c.progress.Load()).Add(c.idle))
			if c.quit.Load() { // abort raced with the line above
				c.dl.SetReadDeadline(time.Unix(1, 0))
			}
		}
		n, err = c.rw.Read(p)
		// Our writes moving counts too (a peer busy reading a long
		// answer sends nothing meanwhile): read on.
		if n > 0 || err == nil || !isTimeout(err) || c.quit.Load() || c.sinceProgress() >= c.idle {
			break
		}
	}
	if *r.part += n; *r.part >= progressFloor {
		*r.part = 0
		c.touch()
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// inbound is a frame (or the error that ended reading) from the reader.
type inbound struct {
	m   NetworkMessage
	n   int
	err error
}

// inbox is the reader goroutine's unbounded queue, bounded instead by the
// bytes not yet processed: the protocol keeps an honest peer far below
// limit, so exceeding it means a flood.
type inbox struct {
	mu     sync.Mutex
	q      []inbound
	bytes  int
	limit  int
	notify chan struct{}
}

func (b *inbox) push(in inbound) bool {
	b.mu.Lock()
	b.q = append(b.q, in)
	b.bytes += in.n
	over := b.bytes > b.limit
	b.mu.Unlock()
	select {
	case b.notify <- struct{}{}:
	default:
	}
	return !over
}

func (b *inbox) pop() (inbound, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.q) == 0 {
		return inbound{}, false
	}
	in := b.q[0]
	b.q = b.q[1:]
	b.bytes -= in.n
	return in, true
}

// readLoop reads frames into box until an error or a Bye (after which the
// peer sends nothing).
func (c *conn) readLoop(box *inbox, done chan<- struct{}) {
	defer close(done)
	part := 0
	for {
		if c.quit.Load() {
			return
		}
		m, n, err := ReadFrame(progressReader{c, &part}, c.max)
		if err != nil {
			box.push(inbound{n: n, err: err})
			return
		}
		part = 0
		c.touch()
		if !box.push(inbound{m: m, n: n}) {
			box.push(inbound{err: fmt.Errorf("%w: peer sent more than %d bytes the session has not processed yet", ErrProtocol, box.limit)})
			return
		}
		if m.Type == TypeHello {
			// A version 3 exchange goes on after the peer's Bye (it still
			// answers our requests); older versions send nothing after it.
			var h struct {
				Version int `json:"version"`
			}
			json.Unmarshal(m.Payload, &h)
			c.byeEnds.Store(min(h.Version, c.ours) < 3)
		}
		if m.Type == TypeBye && c.byeEnds.Load() {
			return
		}
	}
}
