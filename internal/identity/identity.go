// Package identity derives an agent's Ed25519 identity from a seed phrase and
// keeps it on disk.
//
// One key, three names: the same Ed25519 key is the mmogit author key (hex),
// the Tor v3 onion address and the libp2p peer ID. Derivation is compatible
// with the reference mmogit so the same words give the same key:
//
//   - a valid BIP39 mnemonic (12/15/18/21/24 words) → BIP39 seed with an
//     empty passphrase (PBKDF2-HMAC-SHA512, 2048 rounds, salt "mnemonic") →
//     its first 32 bytes are the Ed25519 seed;
//   - any other phrase ("YOLO mode") → SHA-256(phrase || "mmogit-sovereignty-salt").
package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"unicode"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/mmogit/mmogit/internal/onion"
	"github.com/tyler-smith/go-bip39"
)

// yoloSalt is appended to non-BIP39 phrases by the reference implementation.
const yoloSalt = "mmogit-sovereignty-salt"

// Identity is an agent's signing key and the names derived from it.
type Identity struct {
	Private ed25519.PrivateKey
	Public  ed25519.PublicKey
	// Phrase is the words the key came from; empty when built from a raw key.
	Phrase string
	// Mnemonic is true when Phrase is a valid BIP39 mnemonic.
	Mnemonic bool
}

// NewMnemonic returns a fresh 24-word BIP39 mnemonic (256 bits of entropy).
func NewMnemonic() (string, error) {
	ent, err := bip39.NewEntropy(256)
	if err != nil {
		return "", fmt.Errorf("identity: entropy: %w", err)
	}
	m, err := bip39.NewMnemonic(ent)
	if err != nil {
		return "", fmt.Errorf("identity: mnemonic: %w", err)
	}
	return m, nil
}

// normalizePhrase collapses whitespace so "a  b\n" and "a b" are one phrase.
func normalizePhrase(p string) string { return strings.Join(strings.Fields(p), " ") }

// IsMnemonic reports whether phrase is a valid BIP39 mnemonic (word list and
// checksum) of an allowed length.
func IsMnemonic(phrase string) bool {
	p := normalizePhrase(phrase)
	switch len(strings.Fields(p)) {
	case 12, 15, 18, 21, 24:
	default:
		return false
	}
	return bip39.IsMnemonicValid(p)
}

// FromPhrase derives the identity for phrase. An empty phrase is an error.
func FromPhrase(phrase string) (*Identity, error) {
	p := normalizePhrase(phrase)
	if p == "" {
		return nil, fmt.Errorf("identity: empty seed phrase")
	}
	var seed []byte
	mnemonic := IsMnemonic(p)
	if mnemonic {
		seed = bip39.NewSeed(p, "")[:ed25519.SeedSize]
	} else {
		// The reference hashes the phrase as given, not normalized; keep its
		// bytes so YOLO identities interoperate.
		h := sha256.Sum256([]byte(phrase + yoloSalt))
		seed = h[:]
	}
	id := FromSeed(seed)
	id.Phrase, id.Mnemonic = p, mnemonic
	if !mnemonic {
		id.Phrase = phrase
	}
	return id, nil
}

// FromSeed builds an identity from a 32-byte Ed25519 seed.
func FromSeed(seed []byte) *Identity {
	priv := ed25519.NewKeyFromSeed(seed)
	return &Identity{Private: priv, Public: priv.Public().(ed25519.PublicKey)}
}

// PubHex is the 64-character lowercase hex public key (the mmogit author).
func (id *Identity) PubHex() string { return hex.EncodeToString(id.Public) }

// Branch is the git branch holding this identity's messages.
func (id *Identity) Branch() string { return "users/" + id.PubHex()[:8] }

// OnionAddress is the v3 onion address with the ".onion" suffix.
func (id *Identity) OnionAddress() string { return onion.Hostname(id.Public) }

// PeerID is the libp2p peer ID of the identity key.
func (id *Identity) PeerID() peer.ID {
	pid, err := PeerIDFromPublic(id.Public)
	if err != nil {
		panic(err) // a 32-byte Ed25519 key always converts
	}
	return pid
}

// Libp2pKey returns the identity key as a libp2p private key.
func (id *Identity) Libp2pKey() crypto.PrivKey {
	k, err := crypto.UnmarshalEd25519PrivateKey(id.Private)
	if err != nil {
		panic(err)
	}
	return k
}

// PeerIDFromPublic returns the libp2p peer ID of an Ed25519 public key.
func PeerIDFromPublic(pub ed25519.PublicKey) (peer.ID, error) {
	k, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	return peer.IDFromPublicKey(k)
}

// PeerIDFromOnion returns the peer ID of the agent behind an onion address:
// the address is the key, so no lookup is needed.
func PeerIDFromOnion(addr string) (peer.ID, error) {
	pub, err := onion.Parse(addr)
	if err != nil {
		return "", err
	}
	return PeerIDFromPublic(pub)
}

// PublicFromPeerID extracts the Ed25519 key from a peer ID.
func PublicFromPeerID(id peer.ID) (ed25519.PublicKey, error) {
	k, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("identity: peer %s: %w", id, err)
	}
	raw, err := k.Raw()
	if err != nil || k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("identity: peer %s is not an Ed25519 key", id)
	}
	return ed25519.PublicKey(raw), nil
}

// EstimateEntropy gives a rough upper bound in bits for a non-BIP39 phrase:
// length times log2 of the character classes it uses. It is a warning aid,
// not a strength meter.
func EstimateEntropy(phrase string) float64 {
	var lower, upper, digit, other bool
	for _, r := range phrase {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			other = true
		}
	}
	pool := 0
	for _, c := range []struct {
		on bool
		n  int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {other, 33}} {
		if c.on {
			pool += c.n
		}
	}
	if pool == 0 {
		return 0
	}
	return float64(len([]rune(phrase))) * math.Log2(float64(pool))
}

// ParsePeerKey reads the public key of another agent from any of its three
// names: a 64-hex Ed25519 key (its mmogit author), its v3 onion address
// (with or without ".onion"), or its libp2p peer ID. Short hex prefixes are
// refused: anyone can grind a key that shares one.
func ParsePeerKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("identity: empty peer name; give a 64-hex key, an onion address or a peer ID")
	}
	if len(s) == 2*ed25519.PublicKeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return ed25519.PublicKey(b), nil
		}
	}
	if pub, err := onion.Parse(s); err == nil {
		return pub, nil
	} else if strings.HasSuffix(strings.ToLower(s), onion.Suffix) || len(s) == 56 {
		return nil, fmt.Errorf("identity: %q is not a valid onion address: %w", s, err)
	}
	if id, err := peer.Decode(s); err == nil {
		pub, err := PublicFromPeerID(id)
		if err != nil {
			return nil, fmt.Errorf("identity: peer ID %s: %w", s, err)
		}
		return pub, nil
	}
	if _, err := hex.DecodeString(s); err == nil && len(s) < 2*ed25519.PublicKeySize {
		return nil, fmt.Errorf("identity: %q is a key prefix; give the whole 64-hex key (a prefix is cheap to grind)", s)
	}
	return nil, fmt.Errorf("identity: %q is not a 64-hex key, an onion address or a peer ID", s)
}
