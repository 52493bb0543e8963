package syncproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// MaxFrame is the default cap on a frame's JSON body, as in the reference.
const MaxFrame = 10 << 20

// Errors callers branch on. Errors returned by this package wrap one of them
// (or a context error) with details.
var (
	ErrFrameTooLarge = errors.New("syncproto: frame too large")
	ErrTimeout       = errors.New("syncproto: timeout")
	ErrProtocol      = errors.New("syncproto: protocol violation")
)

// Message types. The first six are the reference's; the others carry the
// incremental exchange and the Hello proof.
const (
	TypeHello          = "Hello"
	TypeMemoryRequest  = "MemoryRequest"
	TypeMemoryResponse = "MemoryResponse"
	TypePing           = "Ping"
	TypePong           = "Pong"
	TypeBye            = "Bye"
	TypeAuth           = "Auth"
	TypeSummary        = "Summary"
	TypeIDs            = "Ids"
	TypeDone           = "Done"
	TypeBuckets        = "Buckets"
	TypePush           = "Push"
)

// NetworkMessage is one frame's body: {"msg_type", "payload", "signature"}.
// Signature is unused by this protocol (the Hello proof travels in Auth) and
// always null. The field names echo the reference mmogit's NetworkMessage,
// but the format differs (see the package doc and package refwire).
type NetworkMessage struct {
	Type      string          `json:"msg_type"`
	Payload   json.RawMessage `json:"payload"`
	Signature *string         `json:"signature"`
	// Hop is the frame's causal depth: one more than the deepest frame
	// its sender had received when sending it (version 3; older peers
	// leave it out). Half the deepest hop is the session's round trips.
	Hop int `json:"hop,omitempty"`
}

// NewMessage builds a NetworkMessage with payload marshalled to JSON.
func NewMessage(typ string, payload any) (NetworkMessage, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return NetworkMessage{}, fmt.Errorf("syncproto: encode %s: %w", typ, err)
	}
	return NetworkMessage{Type: typ, Payload: b}, nil
}

// AppendFrame appends the frame for m (4-byte big-endian length, then the
// JSON body) to dst. A body over max bytes gives ErrFrameTooLarge.
func AppendFrame(dst []byte, m NetworkMessage, max int) ([]byte, error) {
	if m.Payload == nil {
		m.Payload = json.RawMessage("null")
	}
	body, err := json.Marshal(m)
	if err != nil {
		return dst, fmt.Errorf("syncproto: encode frame: %w", err)
	}
	if len(body) > max {
		return dst, fmt.Errorf("%w: %s body of %d bytes, limit %d", ErrFrameTooLarge, m.Type, len(body), max)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// DecodeFrame decodes the first frame in b and returns it with the number of
// bytes it used. A length over max gives ErrFrameTooLarge before anything
// else; a short buffer gives io.ErrUnexpectedEOF; a body that is not a
// NetworkMessage gives ErrProtocol.
func DecodeFrame(b []byte, max int) (NetworkMessage, int, error) {
	if len(b) < 4 {
		return NetworkMessage{}, 0, io.ErrUnexpectedEOF
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(max) {
		return NetworkMessage{}, 0, fmt.Errorf("%w: header says %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	if uint64(len(b)-4) < uint64(n) {
		return NetworkMessage{}, 0, io.ErrUnexpectedEOF
	}
	m, err := parseBody(b[4 : 4+n])
	return m, 4 + int(n), err
}

// ReadFrame reads one frame from r. The length is checked against max
// before the body is allocated, so a hostile header costs nothing. It
// returns the frame and the bytes read.
func ReadFrame(r io.Reader, max int) (NetworkMessage, int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return NetworkMessage{}, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if uint64(n) > uint64(max) {
		return NetworkMessage{}, 4, fmt.Errorf("%w: header says %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	body, err := readBody(r, int(n))
	if err != nil {
		return NetworkMessage{}, 4, err
	}
	m, err := parseBody(body)
	return m, 4 + int(n), err
}

// firstChunk bounds what a frame header alone can make us allocate: the
// body buffer grows only as bytes actually arrive, so a peer that sends a
// 10 MB header and then stalls costs 64 KiB, not 10 MB, per stream.
const firstChunk = 64 << 10

func readBody(r io.Reader, n int) ([]byte, error) {
	body := make([]byte, 0, min(n, firstChunk))
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(cap(body), n-len(body)))
		}
		k, err := io.ReadFull(r, body[len(body):min(cap(body), n)])
		body = body[:len(body)+k]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return body, nil
}

func parseBody(body []byte) (NetworkMessage, error) {
	var m NetworkMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&m); err != nil {
		return NetworkMessage{}, fmt.Errorf("%w: frame body: %v", ErrProtocol, err)
	}
	if dec.More() {
		return NetworkMessage{}, fmt.Errorf("%w: trailing data after frame body", ErrProtocol)
	}
	if m.Type == "" {
		return NetworkMessage{}, fmt.Errorf("%w: frame without msg_type", ErrProtocol)
	}
	if len(m.Payload) == 0 {
		m.Payload = json.RawMessage("null")
	}
	return m, nil
}

// decodePayload unmarshals m's payload into v, as a protocol violation on
// failure.
func decodePayload(m NetworkMessage, v any) error {
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return fmt.Errorf("%w: %s payload: %v", ErrProtocol, m.Type, err)
	}
	return nil
}
