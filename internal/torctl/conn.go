// Package torctl is a small, context-aware client for Tor's control port
// (control-spec.txt), written for mmogit instead of depending on a control
// library.
//
// One reader goroutine per connection reads every reply: synchronous replies
// (2xx/4xx/5xx) go to the waiting commands in FIFO order, asynchronous 650
// events are fanned out to subscribers without ever blocking (a subscriber
// whose buffer is full loses the event and the loss is counted). Command
// building and reply parsing are pure functions, tested against the grammar
// quoted from the spec.
package torctl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// ErrClosed is matched (errors.Is) by the error of every call on a connection
// that has been closed or whose tor went away.
var ErrClosed = errors.New("torctl: connection closed")

// ReplyError is a 4xx or 5xx reply to a command.
type ReplyError struct {
	Code int
	Msg  string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("torctl: tor replied %d %s", e.Code, e.Msg)
}

// Conn is a control-port connection. All methods are safe for concurrent use.
type Conn struct {
	rwc  io.ReadWriteCloser
	done chan struct{}

	// wmu serialises writing a command with queueing its reply slot, so
	// the FIFO order of pending matches the order on the wire.
	wmu sync.Mutex

	// evmu serialises SETEVENTS updates so concurrent subscriptions cannot
	// leave tor with an older, smaller event list.
	evmu sync.Mutex

	// mu guards the fields below.
	mu        sync.Mutex
	pending   []chan result
	subs      map[*Subscription]struct{}
	setEvents map[string]bool // names set explicitly with SetEvents
	sentEvts  string          // last SETEVENTS argument sent
	err       error           // why the connection closed; nil while open
}

type result struct {
	reply *Reply
	err   error
}

// Dial connects to a control port. network is "tcp" (addr "host:port") or
// "unix" (addr a socket path).
func Dial(ctx context.Context, network, addr string) (*Conn, error) {
	if network != "tcp" && network != "unix" {
		return nil, fmt.Errorf("torctl: dial: unsupported network %q", network)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("torctl: dial: %w", err)
	}
	return New(nc), nil
}

// New starts a client on an established connection; the Conn owns rwc and
// closes it on Close.
func New(rwc io.ReadWriteCloser) *Conn {
	c := &Conn{
		rwc:       rwc,
		done:      make(chan struct{}),
		subs:      make(map[*Subscription]struct{}),
		setEvents: make(map[string]bool),
	}
	go c.readLoop()
	return c
}

// Done is closed once the connection is closed, by Close or because tor
// closed it.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection closed (matching ErrClosed), or nil while it
// is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection; pending and later calls return ErrClosed.
func (c *Conn) Close() error {
	c.shutdown(nil)
	return nil
}

// shutdown records the cause, fails every pending call, ends the
// subscriptions and closes the transport. Only the first call has effect.
func (c *Conn) shutdown(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if cause == nil {
		c.err = ErrClosed
	} else {
		c.err = fmt.Errorf("%w: %w", ErrClosed, cause)
	}
	pending := c.pending
	c.pending = nil
	for s := range c.subs {
		s.closeLocked()
	}
	c.subs = nil
	close(c.done)
	c.mu.Unlock()

	c.rwc.Close()
	for _, ch := range pending {
		ch <- result{err: c.err}
	}
}

func (c *Conn) readLoop() {
	br := bufio.NewReaderSize(c.rwc, 64<<10)
	for {
		r, err := ReadReply(br)
		if err != nil {
			c.shutdown(err)
			return
		}
		if r.Async() {
			c.dispatch(r)
			continue
		}
		c.mu.Lock()
		if len(c.pending) == 0 {
			// An unsolicited synchronous reply (tor sends none in
			// normal operation); nothing waits for it.
			c.mu.Unlock()
			continue
		}
		ch := c.pending[0]
		c.pending = c.pending[1:]
		c.mu.Unlock()
		ch <- result{reply: r} // buffered: never blocks
	}
}

// Do sends one command line (without CRLF) and waits for its reply. A
// non-2xx reply is returned as *ReplyError. If ctx ends first, Do returns
// ctx.Err(); the reply still arrives later and is discarded, so the
// connection stays usable.
func (c *Conn) Do(ctx context.Context, line string) (*Reply, error) {
	if err := checkNoControl(line); err != nil {
		return nil, err
	}
	ch, err := c.send(ctx, line+"\r\n")
	if err != nil {
		return nil, err
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, res.err
		}
		if !res.reply.OK() {
			return res.reply, &ReplyError{Code: res.reply.Code, Msg: res.reply.Last()}
		}
		return res.reply, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("torctl: %s: %w", verb(line), ctx.Err())
	}
}

// send writes a command and queues its reply slot.
func (c *Conn) send(ctx context.Context, wire string) (chan result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("torctl: %w", err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending = append(c.pending, ch)
	c.mu.Unlock()

	// A write that blocks (tor not reading) must still honour ctx; a
	// half-written command would desynchronise the stream, so on failure
	// the connection is closed.
	if d, ok := c.rwc.(interface{ SetWriteDeadline(time.Time) error }); ok {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			d.SetWriteDeadline(time.Unix(1, 0))
			close(fired)
		})
		defer func() {
			if !stop() {
				// The deadline was set; wait for that before clearing
				// it so the next command is not failed by it.
				<-fired
				d.SetWriteDeadline(time.Time{})
			}
		}()
	}
	if _, err := io.WriteString(c.rwc, wire); err != nil {
		c.shutdown(fmt.Errorf("write: %w", err))
		return nil, c.Err()
	}
	return ch, nil
}

// verb is the first word of a command, for error messages that must not
// echo secrets such as AUTHENTICATE arguments.
func verb(line string) string {
	v, _, _ := strings.Cut(line, " ")
	return strings.ToLower(v)
}
