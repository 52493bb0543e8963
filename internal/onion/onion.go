// Package onion encodes, parses and verifies Tor v3 onion addresses and
// derives the key material tor needs to host an onion service from an
// Ed25519 identity key.
//
// The address format is rend-spec-v3 §6:
//
//	onion_address = base32(PUBKEY | CHECKSUM | VERSION) + ".onion"
//	CHECKSUM = H(".onion checksum" | PUBKEY | VERSION)[:2]
//	H = SHA3-256, VERSION = 0x03
//
// The address is the public key, so an agent's onion address proves which
// key it belongs to without any registry.
package onion

import (
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// Version is the only onion service version this package handles.
const Version = 0x03

// AddressLen is the length of a v3 address without the ".onion" suffix.
const AddressLen = 56

// Suffix is the top-level domain of onion addresses.
const Suffix = ".onion"

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Errors returned by Parse. Each names one way an address can be wrong so
// callers and users can tell a typo from a forgery.
var (
	ErrLength   = errors.New("onion: wrong length")
	ErrBase32   = errors.New("onion: not base32")
	ErrVersion  = errors.New("onion: unsupported version")
	ErrChecksum = errors.New("onion: bad checksum")
	ErrMismatch = errors.New("onion: address does not match key")
)

// Encode returns the 56-character v3 address of pub, lowercase and without
// the ".onion" suffix (the form tor's ADD_ONION returns as ServiceID).
func Encode(pub ed25519.PublicKey) string {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("onion: public key of %d bytes", len(pub)))
	}
	var raw [ed25519.PublicKeySize + 3]byte
	copy(raw[:], pub)
	sum := checksum(pub)
	raw[32], raw[33], raw[34] = sum[0], sum[1], Version
	return strings.ToLower(b32.EncodeToString(raw[:]))
}

// Hostname returns Encode(pub) + ".onion".
func Hostname(pub ed25519.PublicKey) string { return Encode(pub) + Suffix }

func checksum(pub []byte) [2]byte {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{Version})
	var out [2]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Normalize trims ASCII white space, lowercases ASCII letters and strips an
// optional ".onion" suffix. It does not validate, and it leaves non-ASCII
// characters alone: Unicode case folding would turn, say, the Kelvin sign
// U+212A into 'k' and make two different strings one address.
func Normalize(addr string) string {
	a := asciiLower(strings.Trim(addr, asciiSpace))
	return strings.TrimSuffix(a, Suffix)
}

const asciiSpace = " \t\n\v\f\r"

// asciiLower maps A–Z to a–z and leaves every other byte as it is.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Parse validates a v3 onion address (with or without ".onion", any case,
// surrounding ASCII white space ignored) and returns the public key it
// encodes. Anything but ASCII is refused outright with ErrBase32.
func Parse(addr string) (ed25519.PublicKey, error) {
	for i := 0; i < len(addr); i++ {
		if addr[i] >= 0x80 {
			return nil, fmt.Errorf("%w: %q has a non-ASCII character at byte %d", ErrBase32, addr, i)
		}
	}
	a := Normalize(addr)
	if len(a) != AddressLen {
		return nil, fmt.Errorf("%w: %q has %d characters, want %d", ErrLength, addr, len(a), AddressLen)
	}
	raw, err := b32.DecodeString(strings.ToUpper(a))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBase32, addr, err)
	}
	pub := ed25519.PublicKey(raw[:32])
	if v := raw[34]; v != Version {
		return nil, fmt.Errorf("%w: %q has version %d, want %d", ErrVersion, addr, v, Version)
	}
	if sum := checksum(pub); sum[0] != raw[32] || sum[1] != raw[33] {
		return nil, fmt.Errorf("%w: %q (typo or tampered address)", ErrChecksum, addr)
	}
	return pub, nil
}

// Valid reports whether addr is a well-formed v3 onion address.
func Valid(addr string) bool {
	_, err := Parse(addr)
	return err == nil
}

// Verify checks that addr is a valid v3 address for pub.
func Verify(addr string, pub ed25519.PublicKey) error {
	got, err := Parse(addr)
	if err != nil {
		return err
	}
	if !got.Equal(pub) {
		return fmt.Errorf("%w: %s belongs to a different key", ErrMismatch, Normalize(addr))
	}
	return nil
}
