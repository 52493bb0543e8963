package onion

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ExpandedKeySize is the size of tor's expanded Ed25519 secret key.
const ExpandedKeySize = 64

// ExpandKey returns the 64-byte expanded secret key tor uses for an onion
// service: SHA-512 of the 32-byte seed with the scalar half clamped. Tor
// accepts an unclamped key too but then publishes a different address, so
// the clamping is not optional.
func ExpandKey(priv ed25519.PrivateKey) [ExpandedKeySize]byte {
	h := sha512.Sum512(priv.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return h
}

// AddOnionKey returns the key argument of the control port's ADD_ONION
// command ("ED25519-V3:" + base64 of the expanded key).
func AddOnionKey(priv ed25519.PrivateKey) string {
	k := ExpandKey(priv)
	return "ED25519-V3:" + base64.StdEncoding.EncodeToString(k[:])
}

// secretKeyHeader is the 32-byte header of tor's hs_ed25519_secret_key file.
var secretKeyHeader = []byte("== ed25519v1-secret: type0 ==\x00\x00\x00")

// ErrKeyFile is returned for a malformed hs_ed25519_secret_key file.
var ErrKeyFile = errors.New("onion: malformed hs_ed25519_secret_key")

// MarshalSecretKeyFile returns the contents of tor's hs_ed25519_secret_key
// for priv.
func MarshalSecretKeyFile(priv ed25519.PrivateKey) []byte {
	k := ExpandKey(priv)
	out := make([]byte, 0, len(secretKeyHeader)+ExpandedKeySize)
	out = append(out, secretKeyHeader...)
	return append(out, k[:]...)
}

// ParseSecretKeyFile returns the expanded key stored in an
// hs_ed25519_secret_key file. The seed cannot be recovered from it.
func ParseSecretKeyFile(b []byte) ([ExpandedKeySize]byte, error) {
	var k [ExpandedKeySize]byte
	if len(b) != len(secretKeyHeader)+ExpandedKeySize {
		return k, fmt.Errorf("%w: %d bytes, want %d", ErrKeyFile, len(b), len(secretKeyHeader)+ExpandedKeySize)
	}
	if !bytes.Equal(b[:len(secretKeyHeader)], secretKeyHeader) {
		return k, fmt.Errorf("%w: bad header", ErrKeyFile)
	}
	copy(k[:], b[len(secretKeyHeader):])
	return k, nil
}

// WriteHiddenServiceDir writes hs_ed25519_secret_key for priv into dir
// (created 0700, key 0600), the layout tor's HiddenServiceDir expects.
func WriteHiddenServiceDir(dir string, priv ed25519.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("onion: %w", err)
	}
	p := filepath.Join(dir, "hs_ed25519_secret_key")
	if err := os.WriteFile(p, MarshalSecretKeyFile(priv), 0o600); err != nil {
		return fmt.Errorf("onion: write secret key: %w", err)
	}
	return nil
}
