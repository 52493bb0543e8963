package syncproto

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// Ping measures the round trip to a peer running Sync (or anything that
// answers Ping with Pong) over rw: it sends Ping, reads until the matching
// Pong (skipping the peer's Hello and anything else), and leaves with Bye.
// It gives up after DefaultIdle or when ctx ends.
func Ping(ctx context.Context, rw io.ReadWriter) (time.Duration, error) {
	c := newConn(ctx, rw, DefaultIdle, MaxFrame)
	defer c.stop()
	var nb [8]byte
	rand.Read(nb[:])
	nonce := binary.BigEndian.Uint64(nb[:])
	m, err := NewMessage(TypePing, pingMsg{Nonce: nonce})
	if err != nil {
		return 0, err
	}

	type result struct {
		rtt time.Duration
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		if err := c.write(ctx, m); err != nil {
			done <- result{err: err}
			return
		}
		for range 64 { // a peer that never pongs is cut off, not waited on forever
			if c.dl != nil {
				c.dl.SetReadDeadline(time.Now().Add(DefaultIdle))
			}
			f, _, err := ReadFrame(rw, MaxFrame)
			if err != nil {
				if isTimeout(err) && ctx.Err() == nil {
					err = fmt.Errorf("%w: peer stalled: no pong after %v", ErrTimeout, DefaultIdle)
				}
				done <- result{err: err}
				return
			}
			var p pingMsg
			if f.Type == TypePong && decodePayload(f, &p) == nil && p.Nonce == nonce {
				rtt := time.Since(start)
				bye, _ := NewMessage(TypeBye, byeMsg{Reason: "ping done"})
				done <- result{rtt: rtt, err: c.write(ctx, bye)}
				return
			}
		}
		done <- result{err: fmt.Errorf("%w: no pong among the peer's first 64 frames", ErrProtocol)}
	}()
	t := time.NewTimer(DefaultIdle + time.Second)
	defer t.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			if ctx.Err() != nil {
				return 0, fmt.Errorf("syncproto: ping: %w", ctx.Err())
			}
			return 0, fmt.Errorf("syncproto: ping: %w", r.err)
		}
		return r.rtt, nil
	case <-ctx.Done():
		c.abort()
		return 0, fmt.Errorf("syncproto: ping: %w", ctx.Err())
	case <-t.C:
		c.abort()
		return 0, fmt.Errorf("%w: ping: no pong after %v", ErrTimeout, DefaultIdle)
	}
}
