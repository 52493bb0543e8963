// Package memory keeps signed memories in a local git repository.
//
// A memory is a [Message]: content signed by an Ed25519 author key, in the
// JSON shape of the reference mmogit implementation:
//
//	{"content": "...", "author": "<64 hex>", "timestamp": "<RFC 3339>", "signature": "<128 hex>"}
//
// The signature covers the UTF-8 bytes of content||author||timestamp with no
// separators. That concatenation is ambiguous (a byte can move between content
// and author only if the author stays valid hex of the right length, so in
// practice it is bound by the fixed-length author), but it is kept as is so
// that stored messages verify in both implementations.
//
// A [Store] keeps one file per message on the git branch
// users/<first 8 hex of the author key>, at the root of its tree under
// [FileName] (the layout the reference reads), one commit per post, in a
// repository the git CLI can read. The reference's encrypted envelopes
// (package refenvelope) found in it are listed as such ([ErrEnvelope]) and
// opened for their author by [OpenEnvelopes]; they are never synced. Messages received from peers go through [Store.Add],
// which verifies every signature before anything is written.
//
// Content may itself be a structured memory (see [Memory], [NewMemory],
// [ParseMemory] and [Store.Recall]).
package memory

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// TimestampLayout is the layout Sign writes timestamps in (always UTC).
// Verify accepts any RFC 3339 timestamp, as written by the reference
// implementation ("+00:00" offsets included), because the signature covers
// the timestamp string exactly as stored.
const TimestampLayout = time.RFC3339Nano

// MaxContentBytes bounds the content of one message. It keeps the JSON form
// of any message (at most six bytes per content byte after escaping) well
// under the sync protocol's 10 MiB frame cap.
const MaxContentBytes = 1 << 20

// Verification errors. Verify wraps exactly one of them, so callers can
// branch with errors.Is.
var (
	ErrBadAuthor         = errors.New("memory: bad author key")
	ErrBadSignature      = errors.New("memory: bad signature encoding")
	ErrBadTimestamp      = errors.New("memory: bad timestamp")
	ErrSignatureMismatch = errors.New("memory: signature does not match")
	ErrTooLarge          = errors.New("memory: content too large")
	ErrMalformed         = errors.New("memory: malformed message file")
	ErrNotUTF8           = errors.New("memory: content is not valid UTF-8")
	// ErrEnvelope marks a reference mmogit encrypted envelope: not a
	// forgery, but nothing anyone other than its author can read or
	// verify (see package refenvelope and OpenEnvelopes).
	ErrEnvelope = errors.New("memory: reference mmogit encrypted envelope, readable and verifiable only by its author")
)

// Message is one signed memory, in the reference wire and storage format.
type Message struct {
	Content   string `json:"content"`
	Author    string `json:"author"`    // 64 lowercase hex: Ed25519 public key
	Timestamp string `json:"timestamp"` // RFC 3339
	Signature string `json:"signature"` // 128 lowercase hex: Ed25519 signature
}

// signedBytes is what the signature covers: content||author||timestamp.
func signedBytes(content, author, timestamp string) []byte {
	b := make([]byte, 0, len(content)+len(author)+len(timestamp))
	b = append(b, content...)
	b = append(b, author...)
	return append(b, timestamp...)
}

// Sign returns content signed by priv at time t (converted to UTC).
func Sign(priv ed25519.PrivateKey, content string, t time.Time) Message {
	author := hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	ts := t.UTC().Format(TimestampLayout)
	sig := ed25519.Sign(priv, signedBytes(content, author, ts))
	return Message{Content: content, Author: author, Timestamp: ts, Signature: hex.EncodeToString(sig)}
}

// Verify checks the encodings and the signature. Hex must be lowercase, as
// the reference writes it, so that every message has one spelling (and so
// one ID).
func (m Message) Verify() error {
	pub, err := decodeLowerHex(m.Author, ed25519.PublicKeySize)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadAuthor, err)
	}
	sig, err := decodeLowerHex(m.Signature, ed25519.SignatureSize)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	if _, err := m.Time(); err != nil {
		return err
	}
	if len(m.Content) > MaxContentBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(m.Content), MaxContentBytes)
	}
	if !ed25519.Verify(ed25519.PublicKey(pub), signedBytes(m.Content, m.Author, m.Timestamp), sig) {
		return ErrSignatureMismatch
	}
	return nil
}

// Time parses the timestamp.
func (m Message) Time() (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q", ErrBadTimestamp, m.Timestamp)
	}
	return t, nil
}

// ID returns the message's content id: lowercase hex SHA-256 over a
// domain-separated, length-prefixed encoding of all four fields.
//
// Every field is covered, so two messages that differ in any byte have
// different IDs (a message edited after signing gets a new ID and also fails
// Verify). Length prefixes make the encoding unambiguous, unlike the
// signature's concatenation. The ID does not depend on JSON formatting, so a
// peer re-encoding a message does not change it.
func (m Message) ID() string {
	h := sha256.New()
	h.Write([]byte("mmogit-message-id-v1\x00"))
	var n [8]byte
	for _, f := range []string{m.Content, m.Author, m.Timestamp, m.Signature} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func decodeLowerHex(s string, size int) ([]byte, error) {
	if len(s) != 2*size {
		return nil, fmt.Errorf("want %d hex characters, got %d", 2*size, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return nil, fmt.Errorf("invalid character %q at %d (want lowercase hex)", c, i)
		}
	}
	return hex.DecodeString(s)
}

// IsID reports whether s has the shape of a message ID.
func IsID(s string) bool {
	_, err := decodeLowerHex(s, sha256.Size)
	return err == nil
}
