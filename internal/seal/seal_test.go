package seal

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

func keyN(n byte) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte{'k', n})
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// TestFixedVector: the all-zero seed, cross-checked once outside Go:
// python3 cryptography's X25519 of the clamped SHA-512(seed)[:32] and the
// map u = (1+y)/(1-y) on its Ed25519 key both give 5bf55c73…947d, and
// `age-keygen -y` of the identity below prints the recipient below.
func TestFixedVector(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, 32))
	const (
		wantRec = "age1t064cuac96lz905q7dpsvea02u86uf2k5eq4u6es6sr9xq92j37slzjpnt"
		wantID  = "AGE-SECRET-KEY-12PR2MSWM4QUGV7ETH07APS6Z8EVT27TSK5N84Y8409SFYJ5879TQ008LJE"
	)
	rec, err := RecipientString(pubOf(priv))
	if err != nil || rec != wantRec {
		t.Errorf("RecipientString = %q, %v; want %q", rec, err, wantRec)
	}
	id, err := IdentityString(priv)
	if err != nil || id != wantID {
		t.Errorf("IdentityString = %q, %v; want %q", id, err, wantID)
	}
}

// TestRecipientMatchesIdentity: the Montgomery form of the Ed25519 public
// key is the X25519 public key of the clamped scalar, for many keys. This
// is what lets anyone encrypt to an agent from its onion address.
func TestRecipientMatchesIdentity(t *testing.T) {
	for n := byte(0); n < 32; n++ {
		priv := keyN(n)
		id, err := IdentityFor(priv)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := RecipientString(pubOf(priv))
		if err != nil {
			t.Fatal(err)
		}
		if got := id.Recipient().String(); got != rec {
			t.Errorf("key %d: identity's recipient %s, RecipientString %s", n, got, rec)
		}
	}
}

func TestBadKeys(t *testing.T) {
	if _, err := RecipientString(make([]byte, 31)); err == nil {
		t.Error("31-byte key accepted")
	}
	// y = 2 has no x on edwards25519 ((y²-1)/(dy²+1) is not a square).
	bad := make([]byte, 32)
	bad[0] = 2
	if _, err := RecipientString(bad); err == nil {
		t.Error("non-point accepted")
	}
	if _, err := IdentityString(make([]byte, 10)); err == nil {
		t.Error("short private key accepted")
	}
	// The identity point (0, 1) maps to u = 0, a low-order point age refuses.
	low := make([]byte, 32)
	low[0] = 1
	if _, err := Seal("x", []ed25519.PublicKey{low}); err == nil {
		t.Error("sealed to a low-order key")
	}
}

func TestSealOpen(t *testing.T) {
	a, b, c := keyN(1), keyN(2), keyN(3)
	tests := []struct {
		name    string
		text    string
		to      []ed25519.PublicKey
		readers []ed25519.PrivateKey
		others  []ed25519.PrivateKey
	}{
		{"self", "hello", []ed25519.PublicKey{pubOf(a)}, []ed25519.PrivateKey{a}, []ed25519.PrivateKey{b, c}},
		{"empty", "", []ed25519.PublicKey{pubOf(a)}, []ed25519.PrivateKey{a}, []ed25519.PrivateKey{b}},
		{"two", "ünïcode ✓\n{\"memory\":1}", []ed25519.PublicKey{pubOf(a), pubOf(b)}, []ed25519.PrivateKey{a, b}, []ed25519.PrivateKey{c}},
		{"dupes", "d", []ed25519.PublicKey{pubOf(a), pubOf(b), pubOf(a), pubOf(b)}, []ed25519.PrivateKey{a, b}, []ed25519.PrivateKey{c}},
		{"multi-chunk", strings.Repeat("x", 200_000), []ed25519.PublicKey{pubOf(c), pubOf(a)}, []ed25519.PrivateKey{a, c}, []ed25519.PrivateKey{b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Seal(tt.text, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if !IsSealed(s) || len(tt.text) > 3 && strings.Contains(s, tt.text) {
				t.Fatalf("sealed content %.40q… not sealed or holds the plaintext", s)
			}
			distinct := map[string]bool{}
			for _, p := range tt.to {
				distinct[string(p)] = true
			}
			if want := SealedSize(len(tt.text), len(distinct)); len(s) != want {
				t.Errorf("sealed %d bytes, SealedSize says %d", len(s), want)
			}
			for _, k := range tt.readers {
				got, err := Open(s, k)
				if err != nil || got != tt.text {
					t.Errorf("reader %x: %.20q, %v", pubOf(k)[:4], got, err)
				}
			}
			for _, k := range tt.others {
				if _, err := Open(s, k); !errors.Is(err, ErrNotRecipient) {
					t.Errorf("non-recipient %x: %v, want ErrNotRecipient", pubOf(k)[:4], err)
				}
			}
		})
	}
	if _, err := Seal("x", nil); err == nil {
		t.Error("sealed to nobody")
	}
}

func TestOpenErrors(t *testing.T) {
	a := keyN(1)
	s, err := Seal("the secret", []ed25519.PublicKey{pubOf(a)})
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := base64.StdEncoding.DecodeString(s[len(Prefix):])
	flip := func(i int) string {
		b := append([]byte{}, bin...)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 1
		return Prefix + base64.StdEncoding.EncodeToString(b)
	}
	macAt := strings.Index(string(bin), "--- ") + 4
	tests := []struct {
		name    string
		content string
		want    error
	}{
		{"plain", "the secret", ErrNotSealed},
		{"plain json", `{"memory":{"type":"Learning"}}`, ErrNotSealed},
		{"prefix only", Prefix, ErrMalformed},
		{"bad base64", Prefix + "!!!!", ErrMalformed},
		{"cut base64", s[:len(s)-1], ErrMalformed},
		{"truncated", Prefix + base64.StdEncoding.EncodeToString(bin[:len(bin)-5]), ErrMalformed},
		{"payload bit", flip(-1), ErrMalformed},
		{"nonce bit", flip(-(len("the secret") + 16 + 1)), ErrMalformed},
		{"header mac", flip(macAt), ErrMalformed},
		{"version line", flip(0), ErrMalformed},
		{"not age", Prefix + base64.StdEncoding.EncodeToString([]byte("hello world")), ErrMalformed},
		{"too long", Prefix + strings.Repeat("A", memory.MaxContentBytes), ErrMalformed},
	}
	for _, tt := range tests {
		_, err := Open(tt.content, a)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if got, err := Open(s, a); err != nil || got != "the secret" {
		t.Fatalf("untouched: %q %v", got, err)
	}
}

// TestSizeLimit: the largest plaintext MaxPlaintext promises seals within
// memory.MaxContentBytes and is accepted by memory.Verify; one byte more is
// ErrTooLarge, whose message states that limit.
func TestSizeLimit(t *testing.T) {
	keys := []ed25519.PrivateKey{keyN(1), keyN(2), keyN(3)}
	for _, r := range []int{1, 3} {
		var to []ed25519.PublicKey
		for _, k := range keys[:r] {
			to = append(to, pubOf(k))
		}
		n := MaxPlaintext(r)
		if n < 700_000 || n >= memory.MaxContentBytes {
			t.Fatalf("%d recipients: implausible limit %d", r, n)
		}
		s, err := Seal(strings.Repeat("a", n), to)
		if err != nil {
			t.Fatalf("%d recipients, %d bytes (the limit): %v", r, n, err)
		}
		if len(s) > memory.MaxContentBytes {
			t.Fatalf("sealed %d bytes > %d", len(s), memory.MaxContentBytes)
		}
		// The limit is tight: the sealed content is within one base64
		// group of the cap, so a larger plaintext could not fit.
		if memory.MaxContentBytes-len(s) >= 4 {
			t.Errorf("%d recipients: limit %d leaves %d bytes unused", r, n, memory.MaxContentBytes-len(s))
		}
		if err := memory.Sign(keys[0], s, time.Unix(1_700_000_000, 0)).Verify(); err != nil {
			t.Errorf("largest sealed message does not verify: %v", err)
		}
		_, err = Seal(strings.Repeat("a", n+1), to)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%d recipients, %d bytes: %v, want ErrTooLarge", r, n+1, err)
		}
		if want := "limit is " + strconv.Itoa(n) + " bytes"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
