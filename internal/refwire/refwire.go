// Package refwire speaks the direct TCP protocol of the reference (Rust)
// mmogit (src/network.rs at RCALabs/mmogit 02b9154): what its `mmogit p2p
// listen` and `p2p connect` exchange.
//
// # Wire format
//
// A frame is a 4-byte big-endian length (at most 10,000,000) and the JSON
// of a NetworkMessage, whose msg_type is a serde externally tagged enum:
// unit variants are strings, struct variants one-key objects, and byte
// vectors arrays of integers:
//
//	{"msg_type": {"Hello": {"pubkey": "<64 hex>"}}, "payload": [], "signature": null}
//	{"msg_type": "Ping", "payload": [], "signature": null}            (also Pong, Bye)
//	{"msg_type": {"MemoryRequest": {"filter": "…"}}, …}
//	{"msg_type": {"MemoryResponse": {"memories": [bytes]}}, …}
//	{"msg_type": {"GitBundle": {"bundle_data": [bytes]}}, …}
//
// This is not mmogit's own sync protocol (package syncproto, whose msg_type
// is a string and payload an object): the two share only the length prefix.
//
// # Session
//
// The reference's listener sends Hello as soon as a peer connects, answers
// Ping with Pong and stops at Bye; its connector sends Hello, waits for
// Hello, sends Ping, waits for Pong and sends Bye. [Serve] and [Connect]
// behave the same, so each completes a session with the reference in
// either role. The reference's MemoryRequest handler is a TODO and it
// defines no content for MemoryResponse's bytes; here they are the JSON
// array of signed messages ({"content","author","timestamp","signature"},
// the reference's own message files), handed to [Options.Receive] to be
// verified and stored, and [Serve] answers a MemoryRequest with
// [Options.Share].
//
// # Keys and trust
//
// There is no authentication: Hello's pubkey is a claim (the reference
// leaves signature null, "TODO: Sign this"), so nothing a peer says about
// itself here is believed. Messages received are stored only if their own
// Ed25519 signatures verify, and what is shared should be what any
// stranger may read.
package refwire

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mmogit/mmogit/internal/refenvelope"
)

// MaxFrame is the reference's limit on a frame body.
const MaxFrame = 10_000_000

// IdleTimeout is how long a side waits for the peer, as the reference's
// socket timeouts.
const IdleTimeout = 30 * time.Second

// Message types (the enum's variant names).
const (
	Hello          = "Hello"
	MemoryRequest  = "MemoryRequest"
	MemoryResponse = "MemoryResponse"
	GitBundle      = "GitBundle"
	Ping           = "Ping"
	Pong           = "Pong"
	Bye            = "Bye"
)

var (
	// ErrFrameTooLarge: a length prefix over MaxFrame.
	ErrFrameTooLarge = errors.New("refwire: frame too large")
	// ErrMalformed: a frame that is not a reference NetworkMessage.
	ErrMalformed = errors.New("refwire: malformed NetworkMessage")
	// ErrProtocol: a well-formed message where another was required.
	ErrProtocol = errors.New("refwire: protocol violation")
)

// Message is one NetworkMessage. Only the fields of its Type are used.
type Message struct {
	Type       string
	Pubkey     string // Hello
	Filter     string // MemoryRequest
	Memories   []byte // MemoryResponse
	BundleData []byte // GitBundle
	Payload    []byte // always empty from the reference
	Signature  *string
}

type wire struct {
	MsgType   json.RawMessage   `json:"msg_type"`
	Payload   refenvelope.Bytes `json:"payload"`
	Signature *string           `json:"signature"`
}

// Marshal encodes m as the reference's serde_json does.
func (m Message) Marshal() ([]byte, error) {
	var t any
	switch m.Type {
	case Ping, Pong, Bye:
		t = m.Type
	case Hello:
		t = map[string]any{Hello: map[string]string{"pubkey": m.Pubkey}}
	case MemoryRequest:
		t = map[string]any{MemoryRequest: map[string]string{"filter": m.Filter}}
	case MemoryResponse:
		t = map[string]any{MemoryResponse: map[string]refenvelope.Bytes{"memories": nz(m.Memories)}}
	case GitBundle:
		t = map[string]any{GitBundle: map[string]refenvelope.Bytes{"bundle_data": nz(m.BundleData)}}
	default:
		return nil, fmt.Errorf("refwire: unknown message type %q", m.Type)
	}
	tb, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wire{MsgType: tb, Payload: nz(m.Payload), Signature: m.Signature})
}

func nz(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Unmarshal decodes a frame body. Like serde, it accepts a unit variant
// as a string or as {"Ping": null}.
func Unmarshal(body []byte) (Message, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.MsgType == nil || w.Payload == nil {
		return Message{}, fmt.Errorf("%w: msg_type and payload are required", ErrMalformed)
	}
	m := Message{Payload: w.Payload, Signature: w.Signature}
	var unit string
	if json.Unmarshal(w.MsgType, &unit) == nil {
		switch unit {
		case Ping, Pong, Bye:
			m.Type = unit
			return m, nil
		}
		return Message{}, fmt.Errorf("%w: %q is not a unit variant (Ping, Pong, Bye)", ErrMalformed, unit)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(w.MsgType, &obj); err != nil || len(obj) != 1 {
		return Message{}, fmt.Errorf("%w: msg_type must be a variant name or a one-key object", ErrMalformed)
	}
	for k, v := range obj {
		m.Type = k
		var err error
		switch k {
		case Ping, Pong, Bye:
			if string(v) != "null" {
				err = fmt.Errorf("unit variant %s with content", k)
			}
		case Hello:
			var f struct {
				Pubkey *string `json:"pubkey"`
			}
			if err = strict(v, &f); err == nil && f.Pubkey == nil {
				err = errors.New("Hello without pubkey")
			} else if err == nil {
				m.Pubkey = *f.Pubkey
			}
		case MemoryRequest:
			var f struct {
				Filter *string `json:"filter"`
			}
			if err = strict(v, &f); err == nil && f.Filter == nil {
				err = errors.New("MemoryRequest without filter")
			} else if err == nil {
				m.Filter = *f.Filter
			}
		case MemoryResponse:
			var f struct {
				Memories *refenvelope.Bytes `json:"memories"`
			}
			if err = strict(v, &f); err == nil && f.Memories == nil {
				err = errors.New("MemoryResponse without memories")
			} else if err == nil {
				m.Memories = *f.Memories
			}
		case GitBundle:
			var f struct {
				BundleData *refenvelope.Bytes `json:"bundle_data"`
			}
			if err = strict(v, &f); err == nil && f.BundleData == nil {
				err = errors.New("GitBundle without bundle_data")
			} else if err == nil {
				m.BundleData = *f.BundleData
			}
		default:
			err = fmt.Errorf("unknown variant %q", k)
		}
		if err != nil {
			return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	return m, nil
}

func strict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// ReadFrame reads one length-prefixed body.
func ReadFrame(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > MaxFrame {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, size, MaxFrame)
	}
	// The buffer grows as bytes arrive: a header claiming 10 MB and then
	// silence costs what was sent, not 10 MB.
	body, err := io.ReadAll(io.LimitReader(r, int64(size)))
	if err != nil {
		return nil, err
	}
	if len(body) < int(size) {
		return nil, fmt.Errorf("refwire: frame of %d bytes ended after %d: %w", size, len(body), io.ErrUnexpectedEOF)
	}
	return body, nil
}

// WriteMessage writes m as one frame.
func WriteMessage(w io.Writer, m Message) error {
	body, err := m.Marshal()
	if err != nil {
		return err
	}
	if len(body) > MaxFrame {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(body), MaxFrame)
	}
	frame := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	_, err = w.Write(append(frame, body...))
	return err
}

// Options configures a session.
type Options struct {
	Pubkey string // ours, 64 hex, sent in Hello
	// Share answers a MemoryRequest (Serve) with the bytes of a
	// MemoryResponse; nil answers with an empty array.
	Share func(filter string) ([]byte, error)
	// Receive gets the bytes of every MemoryResponse (to verify and store);
	// nil ignores them.
	Receive func(memories []byte) error
	// Request, for Connect: send MemoryRequest{filter: Request} after the
	// ping and wait for the response. The reference (02b9154) never
	// answers, so leave it empty when talking to it.
	Request string
	// Idle is the timeout for each wait (default IdleTimeout).
	Idle time.Duration
}

// Result says what happened in a session.
type Result struct {
	PeerPubkey string   // from the peer's Hello: a claim, not proven
	Received   []string // message types received, in order
	Sent       []string // message types sent, in order
}

type session struct {
	c    net.Conn
	opts Options
	res  Result
}

func (s *session) send(m Message) error {
	s.c.SetWriteDeadline(time.Now().Add(s.opts.Idle))
	if err := WriteMessage(s.c, m); err != nil {
		return fmt.Errorf("refwire: send %s: %w", m.Type, err)
	}
	s.res.Sent = append(s.res.Sent, m.Type)
	return nil
}

func (s *session) recv() (Message, error) {
	s.c.SetReadDeadline(time.Now().Add(s.opts.Idle))
	body, err := ReadFrame(s.c)
	if err != nil {
		return Message{}, fmt.Errorf("refwire: receive: %w", err)
	}
	m, err := Unmarshal(body)
	if err != nil {
		return Message{}, err
	}
	s.res.Received = append(s.res.Received, m.Type)
	if m.Type == Hello {
		s.res.PeerPubkey = m.Pubkey
	}
	return m, nil
}

func newSession(ctx context.Context, c net.Conn, opts Options) (*session, func() bool) {
	if opts.Idle <= 0 {
		opts.Idle = IdleTimeout
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	return &session{c: c, opts: opts}, stop
}

// Serve runs the listener's side on c, as the reference's handle_connection
// does: Hello first (unless first, a message already read from the peer,
// is given, in which case that is handled first and our Hello follows it),
// then Pong for each Ping, a MemoryResponse for each MemoryRequest, until
// Bye. A peer that closes the connection without Bye ends it with an error.
func Serve(ctx context.Context, c net.Conn, first *Message, opts Options) (Result, error) {
	s, stop := newSession(ctx, c, opts)
	defer stop()
	helloSent := false
	sendHello := func() error {
		if helloSent {
			return nil
		}
		helloSent = true
		return s.send(Message{Type: Hello, Pubkey: s.opts.Pubkey})
	}
	if first == nil {
		if err := sendHello(); err != nil {
			return s.res, err
		}
	} else {
		s.res.Received = append(s.res.Received, first.Type)
		if first.Type == Hello {
			s.res.PeerPubkey = first.Pubkey
		}
	}
	for {
		var m Message
		if first != nil {
			m, first = *first, nil
		} else {
			var err error
			if m, err = s.recv(); err != nil {
				return s.res, ctxErr(ctx, err)
			}
		}
		if err := sendHello(); err != nil {
			return s.res, err
		}
		var err error
		switch m.Type {
		case Ping:
			err = s.send(Message{Type: Pong})
		case Bye:
			return s.res, nil
		case MemoryRequest:
			out := []byte("[]")
			if s.opts.Share != nil {
				if out, err = s.opts.Share(m.Filter); err != nil {
					return s.res, err
				}
			}
			err = s.send(Message{Type: MemoryResponse, Memories: out})
		case MemoryResponse:
			if s.opts.Receive != nil {
				err = s.opts.Receive(m.Memories)
			}
		}
		// Hello, Pong and GitBundle need no answer (the reference only
		// prints them).
		if err != nil {
			return s.res, err
		}
	}
}

// Connect runs the connector's side on c, as the reference's
// connect_to_peer does: Hello, wait for Hello, Ping, wait for Pong,
// (MemoryRequest and its response if opts.Request is set), Bye.
func Connect(ctx context.Context, c net.Conn, opts Options) (Result, error) {
	s, stop := newSession(ctx, c, opts)
	defer stop()
	if err := s.send(Message{Type: Hello, Pubkey: s.opts.Pubkey}); err != nil {
		return s.res, err
	}
	if err := s.await(ctx, Hello); err != nil {
		return s.res, err
	}
	if err := s.send(Message{Type: Ping}); err != nil {
		return s.res, err
	}
	if err := s.await(ctx, Pong); err != nil {
		return s.res, err
	}
	if s.opts.Request != "" {
		if err := s.send(Message{Type: MemoryRequest, Filter: s.opts.Request}); err != nil {
			return s.res, err
		}
		if err := s.await(ctx, MemoryResponse); err != nil {
			return s.res, err
		}
	}
	return s.res, s.send(Message{Type: Bye})
}

// await reads until a message of type want, answering Pings and handing
// MemoryResponses to Receive on the way.
func (s *session) await(ctx context.Context, want string) error {
	for {
		m, err := s.recv()
		if err != nil {
			return ctxErr(ctx, fmt.Errorf("waiting for %s: %w", want, err))
		}
		if m.Type == MemoryResponse && s.opts.Receive != nil {
			if err := s.opts.Receive(m.Memories); err != nil {
				return err
			}
		}
		switch {
		case m.Type == want:
			return nil
		case m.Type == Ping:
			if err := s.send(Message{Type: Pong}); err != nil {
				return err
			}
		case m.Type == Bye:
			return fmt.Errorf("%w: peer said Bye while we waited for %s", ErrProtocol, want)
		}
	}
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("refwire: %w", ctx.Err())
	}
	return err
}
