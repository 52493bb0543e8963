// Package seal is the encryption of memories: it turns message content into
// an age ciphertext only chosen agents can read, and back.
//
// # Keys
//
// An agent has one key pair, derived from its seed phrase (see package
// identity). It serves two purposes:
//
//   - Ed25519 signatures: the 32-byte Ed25519 public key is the mmogit
//     author, the onion address and the libp2p peer ID.
//   - X25519 decryption (age): the private scalar is the clamped first half
//     of SHA-512(Ed25519 seed), the same expanded key Ed25519 signs with and
//     tor receives as the onion service key. The public X25519 key is the
//     Montgomery form of the Ed25519 public key (the birational map from
//     edwards25519 to curve25519), so anyone can encrypt to an agent knowing
//     only its onion address, 64-hex key or peer ID: no key exchange, no
//     second key to publish or back up.
//
// Using one key pair for Ed25519 and an X25519 based KEM was analysed and
// found safe by Thormarker, "On using the same key pair for Ed25519 and an
// X25519 based KEM" (IACR ePrint 2021/509).
//
// The X25519 side is exported as standard age strings ([RecipientString],
// age1…, and [IdentityString], AGE-SECRET-KEY-1…), so the real age tool can
// decrypt memories with the identity from `mmogit key export --age` and
// encrypt to an agent with `age -r`.
//
// # Who can read what
//
// Sealed content is [Prefix] followed by the standard base64 of a binary age
// file with one X25519 stanza per recipient. The author is always among the
// recipients (the CLI adds it), so an agent can read its own memories on any
// machine its seed phrase is restored on. Nobody else can read it: not the
// peers the message is synced to, not whoever holds the repository. The
// message signature covers the armoured ciphertext, so anyone still verifies
// authorship and integrity without reading.
//
// What stays visible: the author, the timestamp, the message ID, the
// exact size of the plaintext (age adds a fixed overhead, see SealedSize)
// and the number of recipients (one stanza each). Which keys the recipients are is not
// visible: age X25519 stanzas carry only an ephemeral share. The author
// keeps that list locally in the recipient index (recipients.json, see
// [AddToIndex]) so its agent knows which peers may receive which message.
//
// Layering: seal imports memory (for MaxContentBytes), so memory cannot
// import seal; memory.Filter.Open is how a caller decrypts during Recall.
package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"filippo.io/edwards25519"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/mmogit/mmogit/internal/memory"
)

// Prefix starts every sealed content. The version names the format
// (age v1 in standard base64), so a later format can coexist.
const Prefix = "mmogit-age-v1:"

// Errors callers branch on with errors.Is.
var (
	// ErrTooLarge: the sealed content would exceed memory.MaxContentBytes.
	ErrTooLarge = errors.New("seal: content too large")
	// ErrNotSealed: the content does not start with Prefix (a plain
	// message).
	ErrNotSealed = errors.New("seal: content is not sealed")
	// ErrNotRecipient: the content is not addressed to this key. age
	// cannot tell a stanza for another key from a corrupted stanza for
	// ours, so a damaged stanza also reads as this.
	ErrNotRecipient = errors.New("seal: not addressed to this key")
	// ErrMalformed: the content has the prefix but is not a valid age
	// file for us (bad base64, bad header, failed authentication).
	ErrMalformed = errors.New("seal: malformed sealed content")
)

// IsSealed reports whether content is sealed (starts with Prefix). It says
// nothing about whether the rest is well formed.
func IsSealed(content string) bool { return strings.HasPrefix(content, Prefix) }

// RecipientString returns the age recipient (age1…) of an Ed25519 public
// key: the bech32 of its Montgomery form.
func RecipientString(pub ed25519.PublicKey) (string, error) {
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("seal: public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return "", fmt.Errorf("seal: public key is not a curve point: %w", err)
	}
	s, err := bech32Encode("age", p.BytesMontgomery())
	if err != nil {
		return "", err
	}
	return s, nil
}

// recipient returns the age recipient of pub.
func recipient(pub ed25519.PublicKey) (*age.X25519Recipient, error) {
	s, err := RecipientString(pub)
	if err != nil {
		return nil, err
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		// A low-order point (an attacker-chosen "key") lands here.
		return nil, fmt.Errorf("seal: recipient %x: %w", []byte(pub), err)
	}
	return r, nil
}

// IdentityString returns the age identity (AGE-SECRET-KEY-1…) of an Ed25519
// private key: the bech32 of the clamped first half of SHA-512(seed). It is
// a secret as strong as the seed phrase for reading: never log it.
func IdentityString(priv ed25519.PrivateKey) (string, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return "", fmt.Errorf("seal: private key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	h := sha512.Sum512(priv.Seed())
	defer clear(h[:])
	scalar := h[:32]
	// RFC 8032 clamping; X25519 clamps again, but the exported key should
	// be exactly the scalar Ed25519 and tor use.
	scalar[0] &= 248
	scalar[31] &= 127
	scalar[31] |= 64
	s, err := bech32Encode("age-secret-key-", scalar)
	if err != nil {
		return "", err
	}
	return strings.ToUpper(s), nil
}

// IdentityFor returns the age identity of an Ed25519 private key.
func IdentityFor(priv ed25519.PrivateKey) (*age.X25519Identity, error) {
	s, err := IdentityString(priv)
	if err != nil {
		return nil, err
	}
	id, err := age.ParseX25519Identity(s)
	if err != nil {
		return nil, fmt.Errorf("seal: identity: %w", err)
	}
	return id, nil
}

func bech32Encode(hrp string, data []byte) (string, error) {
	conv, err := bech32.ConvertBits(data, 8, 5, true)
	if err != nil {
		return "", fmt.Errorf("seal: bech32: %w", err)
	}
	s, err := bech32.Encode(hrp, conv)
	if err != nil {
		return "", fmt.Errorf("seal: bech32: %w", err)
	}
	return s, nil
}

// Sizes of an age v1 file with X25519 recipients (age-encryption.org/v1
// spec): the version line, one stanza per recipient ("-> X25519 " + 43
// base64 characters of the ephemeral share + "\n", then 43 base64
// characters of the wrapped 32-byte file key + "\n"), the MAC line ("--- "
// + 43 + "\n"), a 16-byte payload nonce, then the plaintext in 64 KiB
// chunks, each with a 16-byte Poly1305 tag (one chunk when empty).
const (
	ageHeaderFixed  = len("age-encryption.org/v1\n") + len("--- \n") + 43 + 16
	ageStanza       = len("-> X25519 \n") + 43 + 43 + 1
	ageChunk        = 64 << 10
	ageTag          = 16
	maxSealedBinary = (memory.MaxContentBytes - len(Prefix)) / 4 * 3
)

// SealedSize returns the length of the content Seal makes from a plaintext
// of n bytes for r distinct recipients.
func SealedSize(n, r int) int {
	chunks := max(1, (n+ageChunk-1)/ageChunk)
	bin := ageHeaderFixed + r*ageStanza + n + chunks*ageTag
	return len(Prefix) + base64.StdEncoding.EncodedLen(bin)
}

// MaxPlaintext returns the largest plaintext, in bytes, that seals for r
// distinct recipients within memory.MaxContentBytes.
func MaxPlaintext(r int) int {
	// SealedSize grows with n; search the largest n that fits.
	lo, hi := -1, memory.MaxContentBytes
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if SealedSize(mid, r) <= memory.MaxContentBytes {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// Seal encrypts plaintext to the given Ed25519 keys (duplicates removed)
// and returns Prefix + base64(age file). The caller includes the author's
// own key to be able to read it back.
func Seal(plaintext string, to []ed25519.PublicKey) (string, error) {
	if len(to) == 0 {
		return "", errors.New("seal: no recipients")
	}
	seen := map[string]bool{}
	var rs []age.Recipient
	for _, pub := range to {
		if seen[string(pub)] {
			continue
		}
		seen[string(pub)] = true
		r, err := recipient(pub)
		if err != nil {
			return "", err
		}
		rs = append(rs, r)
	}
	// Refuse before encrypting: the size is known exactly in advance.
	if SealedSize(len(plaintext), len(rs)) > memory.MaxContentBytes {
		return "", tooLarge(len(plaintext), len(rs))
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		return "", fmt.Errorf("seal: encrypt: %w", err)
	}
	if _, err := io.WriteString(w, plaintext); err != nil {
		return "", fmt.Errorf("seal: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("seal: encrypt: %w", err)
	}
	out := Prefix + base64.StdEncoding.EncodeToString(buf.Bytes())
	if len(out) > memory.MaxContentBytes { // SealedSize disagrees with age: still never store too much
		return "", tooLarge(len(plaintext), len(rs))
	}
	return out, nil
}

func tooLarge(n, r int) error {
	return fmt.Errorf("%w: %d bytes of plaintext; for %d recipient(s) the limit is %d bytes",
		ErrTooLarge, n, r, MaxPlaintext(r))
}

// Open decrypts sealed content with priv. It returns ErrNotSealed for plain
// content, ErrNotRecipient when the content is not addressed to priv and
// ErrMalformed when it cannot be a valid sealed message.
func Open(content string, priv ed25519.PrivateKey) (string, error) {
	if !IsSealed(content) {
		return "", ErrNotSealed
	}
	if len(content) > memory.MaxContentBytes {
		return "", fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(content), memory.MaxContentBytes)
	}
	bin, err := base64.StdEncoding.Strict().DecodeString(content[len(Prefix):])
	if err != nil {
		return "", fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	id, err := IdentityFor(priv)
	if err != nil {
		return "", err
	}
	r, err := age.Decrypt(bytes.NewReader(bin), id)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return "", fmt.Errorf("%w: %v", ErrNotRecipient, err)
		}
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// The plaintext is never larger than the ciphertext.
	pt, err := io.ReadAll(io.LimitReader(r, int64(len(bin))))
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return string(pt), nil
}
