// Package refenvelope reads and writes the encrypted envelope of the
// reference (Rust) mmogit, whose `post` and `remember` encrypt by default
// (src/crypto.rs, src/post.rs at RCALabs/mmogit 02b9154).
//
// # Format
//
// One JSON file per message, encrypted_<unix nanoseconds>.json, on branch
// users/<first 16 hex of the author key>-encrypted:
//
//	{"version": 1, "nonce": [24 ints], "ciphertext": [ints],
//	 "recipient_hint": null, "timestamp": "<RFC 3339>"}
//
// ciphertext is XChaCha20-Poly1305 (golang.org/x/crypto/chacha20poly1305,
// 16-byte tag appended) of the compact JSON of a signed message
// {"content", "author", "timestamp", "signature"}, the same message the
// reference writes in clear with --public.
//
// # Keys and who can read what
//
// The key is the author's 32-byte Ed25519 seed itself: the reference's
// KeyDerivation::derive_encryption_key returns SigningKey::to_bytes(), and
// its "recipient" option is a TODO, so every envelope is encrypted to its
// author alone. Only a holder of the author's 24-word phrase (the author on
// any of its devices) can decrypt an envelope; nobody else can read it, nor
// check who wrote it: the envelope carries no outer signature, and its
// branch name is a claim anyone can make. The inner message is signed, so
// once decrypted its author is verified like any other message. Reusing
// the signing seed as a cipher key is the reference's choice, kept here only
// to read and write what it reads; mmogit's own encryption (package seal)
// uses age to X25519 keys instead.
package refenvelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the only envelope version the reference writes and reads.
const Version = 1

// MaxFileBytes bounds an envelope file. The reference has no limit; this
// is far above what a 1 MiB message makes (four bytes per ciphertext byte
// at most) and keeps a hostile file from being parsed at any size.
const MaxFileBytes = 16 << 20

var (
	// ErrMalformed: the bytes are not an envelope (or not a well-formed one).
	ErrMalformed = errors.New("refenvelope: malformed envelope")
	// ErrNotOurs: authentication failed with the key given: the envelope was
	// encrypted by another identity, or altered.
	ErrNotOurs = errors.New("refenvelope: cannot decrypt with this identity (another author's envelope, or altered)")
)

// Bytes is a byte string written as serde writes Vec<u8>: a JSON array of
// integers 0..255.
type Bytes []byte

// MarshalJSON writes b as an array of integers.
func (b Bytes) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 4*len(b)+2)
	out = append(out, '[')
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON reads an array of integers 0..255.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var ints []int
	if err := json.Unmarshal(data, &ints); err != nil {
		return fmt.Errorf("want an array of byte values: %w", err)
	}
	out := make([]byte, len(ints))
	for i, v := range ints {
		if v < 0 || v > 255 {
			return fmt.Errorf("byte %d is %d, not in 0..255", i, v)
		}
		out[i] = byte(v)
	}
	*b = out
	return nil
}

// Envelope is the reference's EncryptedEnvelope.
type Envelope struct {
	Version       uint8   `json:"version"`
	Nonce         Bytes   `json:"nonce"`
	Ciphertext    Bytes   `json:"ciphertext"`
	RecipientHint *string `json:"recipient_hint"`
	Timestamp     string  `json:"timestamp"` // RFC 3339, UTC
}

// Parse decodes an envelope file. It refuses anything else, so a signed
// message or a stray file is never mistaken for one.
func Parse(data []byte) (*Envelope, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(data), MaxFileBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var e Envelope
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for _, k := range []string{"version", "nonce", "ciphertext", "timestamp"} {
		if _, ok := raw[k]; !ok {
			return nil, fmt.Errorf("%w: no %q field", ErrMalformed, k)
		}
	}
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.Version != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, e.Version, Version)
	}
	if len(e.Nonce) != chacha20poly1305.NonceSizeX {
		return nil, fmt.Errorf("%w: nonce of %d bytes, want %d", ErrMalformed, len(e.Nonce), chacha20poly1305.NonceSizeX)
	}
	if len(e.Ciphertext) < chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes is shorter than its tag", ErrMalformed, len(e.Ciphertext))
	}
	if _, err := e.Time(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Time parses the envelope's timestamp (when it was sealed; not
// authenticated: anyone can edit it without the key).
func (e *Envelope) Time() (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q", ErrMalformed, e.Timestamp)
	}
	return t, nil
}

// Key is the envelope key of an identity: its Ed25519 seed, as the
// reference derives it.
func Key(priv ed25519.PrivateKey) []byte { return priv.Seed() }

// Open decrypts the envelope with key (see [Key]). A wrong key and an
// altered envelope both give [ErrNotOurs]: AEAD cannot tell them apart.
func (e *Envelope) Open(key []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("refenvelope: key: %w", err)
	}
	pt, err := aead.Open(nil, e.Nonce, e.Ciphertext, nil)
	if err != nil {
		return nil, ErrNotOurs
	}
	return pt, nil
}

// Seal encrypts plaintext to key with a fresh random nonce, stamped now.
func Seal(plaintext, key []byte, now time.Time) (*Envelope, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("refenvelope: key: %w", err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("refenvelope: nonce: %w", err)
	}
	return &Envelope{
		Version:    Version,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plaintext, nil),
		Timestamp:  now.UTC().Format(time.RFC3339Nano),
	}, nil
}

// Marshal encodes the envelope as the reference stores it (pretty JSON).
func (e *Envelope) Marshal() ([]byte, error) {
	return json.MarshalIndent(e, "", "  ")
}

// Branch is the branch the reference keeps author's envelopes on
// (author: 64 hex).
func Branch(author string) string {
	if len(author) > 16 {
		author = author[:16]
	}
	return "users/" + author + "-encrypted"
}

// BranchAuthorPrefix returns the author prefix an envelope branch claims
// ("users/<16 hex>-encrypted"), and false for other branches.
func BranchAuthorPrefix(branch string) (string, bool) {
	const pre, suf = "users/", "-encrypted"
	if len(branch) != len(pre)+16+len(suf) || branch[:len(pre)] != pre || branch[len(pre)+16:] != suf {
		return "", false
	}
	p := branch[len(pre) : len(pre)+16]
	if _, err := hex.DecodeString(p); err != nil {
		return "", false
	}
	return p, true
}

// FileName is the reference's name for an envelope sealed at t.
func FileName(t time.Time) string {
	return "encrypted_" + strconv.FormatInt(t.UnixNano(), 10) + ".json"
}
