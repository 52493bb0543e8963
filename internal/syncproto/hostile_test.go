package syncproto

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

// rawPeer speaks the protocol by hand so tests can misbehave on purpose.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	in   chan NetworkMessage
}

func newRawPeer(t *testing.T, conn net.Conn) *rawPeer {
	p := &rawPeer{t: t, conn: conn, in: make(chan NetworkMessage, 1024)}
	go func() {
		defer close(p.in)
		for {
			m, _, err := ReadFrame(conn, MaxFrame)
			if err != nil {
				return
			}
			p.in <- m
		}
	}()
	return p
}

func (p *rawPeer) send(typ string, payload any) {
	p.t.Helper()
	m, err := NewMessage(typ, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	b, err := AppendFrame(nil, m, MaxFrame)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw peer write %s: %v", typ, err)
	}
}

// expect waits for a frame of type typ, skipping others, and decodes it.
func (p *rawPeer) expect(typ string, v any) {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-p.in:
			if !ok {
				p.t.Fatalf("connection closed while the raw peer waited for %s", typ)
			}
			if m.Type == typ {
				if v != nil {
					if err := json.Unmarshal(m.Payload, v); err != nil {
						p.t.Fatal(err)
					}
				}
				return
			}
		case <-timeout:
			p.t.Fatalf("raw peer: no %s", typ)
		}
	}
}

func nonceHex() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestForgedMessageRejected: a misbehaving peer advertises a forged message
// (valid shape, content changed after signing), serves it with a genuine one
// and pushes an unrequested extra. Only the genuine one is stored, and the
// store's own messages are untouched.
func TestForgedMessageRejected(t *testing.T) {
	ctx := context.Background()
	victim := newStore(t, key(1), 3, "mine")
	before := inventoryOf(t, victim)

	mk := key(9)
	good := memory.Sign(mk, "genuine", time.Unix(1000, 0))
	forged := memory.Sign(mk, "pay bob 1", time.Unix(1001, 0))
	forged.Content = "pay mallory 1000"
	extra := memory.Sign(mk, "unrequested", time.Unix(1002, 0))
	author := good.Author
	ids := []string{good.ID(), forged.ID()}
	if ids[0] > ids[1] {
		ids[0], ids[1] = ids[1], ids[0]
	}

	ca, cb := pipePair(t)
	res := make(chan result, 1)
	go func() {
		st, err := Sync(ctx, ca, victim, Options{IdleTimeout: 5 * time.Second})
		res <- result{st, err}
	}()
	p := newRawPeer(t, cb)
	p.send(TypeHello, helloMsg{Nonce: nonceHex(), Version: 1})
	p.send(TypeSummary, summaryMsg{Authors: map[string]authorSummary{author: {Count: 2, Digest: digest(ids)}}})
	p.send(TypeIDs, idsMsg{Author: author, IDs: ids})
	var req requestMsg
	p.expect(TypeMemoryRequest, &req)
	if len(req.IDs) != 2 {
		t.Fatalf("victim asked for %v", req.IDs)
	}
	p.send(TypeMemoryResponse, responseMsg{Messages: []memory.Message{forged, good, extra}})
	p.send(TypeDone, struct{}{})
	p.expect(TypeDone, nil)
	p.send(TypeBye, byeMsg{})
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.st.Added != 1 || r.st.Rejected != 2 || len(r.st.RejectErrors) != 2 {
		t.Fatalf("stats %+v", r.st)
	}
	if !errors.Is(r.st.RejectErrors[1], memory.ErrSignatureMismatch) && !errors.Is(r.st.RejectErrors[0], memory.ErrSignatureMismatch) {
		t.Fatalf("reject errors %v", r.st.RejectErrors)
	}
	after := inventoryOf(t, victim)
	if len(after[author]) != 1 || after[author][0] != good.ID() {
		t.Fatalf("forged author's messages: %v", after[author])
	}
	for a, ids := range before {
		if fmt.Sprint(after[a]) != fmt.Sprint(ids) {
			t.Fatalf("lost messages of %s", a)
		}
	}
	fsck(t, victim)
}

func TestBadAuthRejected(t *testing.T) {
	s := newStore(t, key(1), 1, "a")
	ca, cb := pipePair(t)
	res := make(chan error, 1)
	go func() { _, err := Sync(context.Background(), ca, s, Options{}); res <- err }()
	p := newRawPeer(t, cb)
	p.send(TypeHello, helloMsg{PubKey: fmt.Sprintf("%x", key(5).Public()), Nonce: nonceHex(), Version: 1})
	p.send(TypeAuth, authMsg{Signature: strings.Repeat("ab", 64)})
	if err := <-res; !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "prove key") {
		t.Fatalf("Sync = %v", err)
	}
}

func TestOversizedFrame(t *testing.T) {
	hdr := []byte{0xff, 0xff, 0xff, 0xff}
	allocs := testing.AllocsPerRun(10, func() {
		if _, _, err := ReadFrame(bytes.NewReader(hdr), MaxFrame); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("ReadFrame = %v", err)
		}
	})
	if allocs > 10 { // the error message, not a 4 GiB body
		t.Fatalf("%v allocations for a refused header", allocs)
	}
	// A live session refuses it too.
	s := newStore(t, key(1), 1, "a")
	ca, cb := pipePair(t)
	res := make(chan error, 1)
	go func() { _, err := Sync(context.Background(), ca, s, Options{}); res <- err }()
	go newRawPeer(t, cb)
	b := binary.BigEndian.AppendUint32(nil, MaxFrame+1)
	cb.Write(b)
	if err := <-res; !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Sync = %v, want ErrFrameTooLarge", err)
	}
}

func TestStallTimeout(t *testing.T) {
	tests := []struct {
		name  string
		act   func(p *rawPeer)
		match string
	}{
		{"silent after hello", func(p *rawPeer) { p.send(TypeHello, helloMsg{Nonce: nonceHex(), Version: 1}) }, "nothing received"},
		{"silent from the start", func(p *rawPeer) {}, "waiting for hello"},
		// Slowloris: a byte every quarter idle timeout never adds up to
		// progress (a whole frame or progressFloor bytes).
		{"drips a frame", func(p *rawPeer) {
			b := binary.BigEndian.AppendUint32(nil, 1000)
			b = append(b, bytes.Repeat([]byte{'{'}, 1000)...)
			go func() {
				for _, c := range b {
					if _, err := p.conn.Write([]byte{c}); err != nil {
						return
					}
					time.Sleep(75 * time.Millisecond)
				}
			}()
		}, "nothing received"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, key(1), 1, "a")
			ca, cb := tcpPair(t)
			res := make(chan error, 1)
			start := time.Now()
			go func() {
				_, err := Sync(context.Background(), ca, s, Options{IdleTimeout: 300 * time.Millisecond})
				res <- err
			}()
			tc.act(newRawPeer(t, cb))
			err := <-res
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "stalled") || !strings.Contains(err.Error(), tc.match) {
				t.Fatalf("Sync = %v", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("cut off after %v", d)
			}
		})
	}
	// A peer that never reads is cut off on write (net.Pipe has no buffer).
	s := newStore(t, key(1), 1, "a")
	ca, _ := pipePair(t)
	_, err := Sync(context.Background(), ca, s, Options{IdleTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "not reading") {
		t.Fatalf("Sync to a non-reader = %v", err)
	}
}

func TestContextCancel(t *testing.T) {
	s := newStore(t, key(1), 1, "a")
	ca, cb := tcpPair(t)
	newRawPeer(t, cb)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Sync(ctx, ca, s, Options{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync = %v", err)
	}
}
