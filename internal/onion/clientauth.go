package onion

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Client authorization (rend-spec-v3 §2.5.1.2, tor's ClientOnionAuthDir
// formats): a restricted onion service lists the x25519 public keys of its
// clients, and only a client whose tor holds a matching private key can
// decrypt the descriptor. The public key travels as base32 (what tor's
// authorized_clients/*.auth files and ADD_ONION ClientAuthV3= take), the
// private key as base64 (what ONION_CLIENT_AUTH_ADD takes after "x25519:").

// ErrClientKey is a malformed client authorization key.
var ErrClientKey = errors.New("onion: bad client authorization key")

const (
	authFilePrefix    = "descriptor:x25519:" // <HiddenServiceDir>/authorized_clients/*.auth
	controlPortPrefix = "x25519:"            // ONION_CLIENT_AUTH_ADD
)

// NewClientKey generates a client authorization key pair.
func NewClientKey() (*ecdh.PrivateKey, error) {
	return ecdh.X25519().GenerateKey(rand.Reader)
}

// EncodeClientPublicKey is k as unpadded base32, the form a service's
// operator lists.
func EncodeClientPublicKey(k *ecdh.PublicKey) string { return b32.EncodeToString(k.Bytes()) }

// EncodeClientPrivateKey is k as base64, the form a client's tor is given.
func EncodeClientPrivateKey(k *ecdh.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.Bytes())
}

// ParseClientPublicKey reads a client's public key: 52 base32 characters,
// optionally prefixed "descriptor:x25519:" as in tor's .auth files.
func ParseClientPublicKey(s string) (*ecdh.PublicKey, error) {
	v := strings.TrimPrefix(strings.TrimSpace(s), authFilePrefix)
	b, err := b32.DecodeString(strings.ToUpper(v))
	if err != nil || len(b) != 32 {
		// The value is not echoed: the likeliest mistake is pasting the
		// private key of the pair here.
		hint := ""
		if _, perr := ParseClientPrivateKey(s); perr == nil {
			hint = "; this looks like a private key: use the public key of the pair"
		}
		return nil, fmt.Errorf("%w: public key is not 52 base32 characters (32 bytes)%s", ErrClientKey, hint)
	}
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClientKey, err)
	}
	// A low-order point (all zeros, among others) gives every client the
	// same shared secret: anyone knowing the address could then read the
	// descriptor. X25519 with such a point yields all zeros, which Go's
	// ECDH refuses.
	if _, err := lowOrderProbe().ECDH(k); err != nil {
		return nil, fmt.Errorf("%w: public key is a low-order point, which would let anyone in", ErrClientKey)
	}
	return k, nil
}

// lowOrderProbe is any fixed x25519 private key: a low-order public key
// gives an all-zero result with every private key.
var lowOrderProbe = sync.OnceValue(func() *ecdh.PrivateKey {
	k, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x42}, 32))
	return k
})

// ParseClientPrivateKey reads a client's private key: 44 base64
// characters, optionally prefixed "x25519:" as tor's control port writes it.
func ParseClientPrivateKey(s string) (*ecdh.PrivateKey, error) {
	v := strings.TrimPrefix(strings.TrimSpace(s), controlPortPrefix)
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != 32 {
		// Never echo a private key, even a malformed one.
		hint := ""
		if raw, err := b32.DecodeString(strings.ToUpper(strings.TrimPrefix(v, authFilePrefix))); err == nil && len(raw) == 32 {
			hint = "; this is base32 (a public key, or tor's .auth_private form): give the base64 private key `mmogit tor auth-key` prints"
		}
		return nil, fmt.Errorf("%w: private key is not 44 base64 characters (32 bytes)%s", ErrClientKey, hint)
	}
	k, err := ecdh.X25519().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrClientKey, err)
	}
	return k, nil
}
