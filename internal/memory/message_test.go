package memory

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// testSeed is RFC 8032 section 7.1 test 1's secret key.
const testSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"

func testKey(tb testing.TB) ed25519.PrivateKey {
	tb.Helper()
	seed, err := hex.DecodeString(testSeed)
	if err != nil {
		tb.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func otherKey(tb testing.TB, b byte) ed25519.PrivateKey {
	tb.Helper()
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

// TestSignGolden pins the signed bytes: the signature below was produced
// independently with `openssl pkeyutl -sign -rawin` over
// "hello, sovereign world" || author || "2025-01-02T03:04:05Z".
func TestSignGolden(t *testing.T) {
	m := Sign(testKey(t), "hello, sovereign world", time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)).Add(time.Hour))
	want := Message{
		Content:   "hello, sovereign world",
		Author:    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
		Timestamp: "2025-01-02T03:04:05Z",
		Signature: "c878a1e9661a428341184965ee98394cd7e2430933d59cc2481e9944c9b176f562feb04e1bbbad58ecebc3080b75efb86f28ea230aa8cd85d7af898482a58a01",
	}
	if m != want {
		t.Fatalf("Sign =\n%+v\nwant\n%+v", m, want)
	}
	if err := m.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Pins the ID encoding; changing it would orphan every stored file name.
	if got, wantID := m.ID(), "33d63c6d916f14adc500ef027b85b3b0219afe26d88f5a0de9fa14dc709e1f95"; got != wantID {
		t.Fatalf("ID = %q, want %q", got, wantID)
	}
}

func TestVerifyErrors(t *testing.T) {
	good := Sign(testKey(t), "content", time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC))
	// A reference-style timestamp ("+00:00" offset) is accepted as long as
	// it is the string that was signed.
	ref := good
	ref.Timestamp = "2025-01-02T03:04:05.000000006+00:00"
	ref.Signature = hex.EncodeToString(ed25519.Sign(testKey(t), signedBytes(ref.Content, ref.Author, ref.Timestamp)))

	tests := []struct {
		name   string
		mutate func(m *Message)
		want   error
	}{
		{"valid", func(m *Message) {}, nil},
		{"reference timestamp", func(m *Message) { *m = ref }, nil},
		{"author too short", func(m *Message) { m.Author = m.Author[:62] }, ErrBadAuthor},
		{"author uppercase", func(m *Message) { m.Author = strings.ToUpper(m.Author) }, ErrBadAuthor},
		{"author not hex", func(m *Message) { m.Author = "zz" + m.Author[2:] }, ErrBadAuthor},
		{"signature too long", func(m *Message) { m.Signature += "00" }, ErrBadSignature},
		{"signature not hex", func(m *Message) { m.Signature = "g" + m.Signature[1:] }, ErrBadSignature},
		{"timestamp garbage", func(m *Message) { m.Timestamp = "yesterday" }, ErrBadTimestamp},
		{"content edited", func(m *Message) { m.Content = "Content" }, ErrSignatureMismatch},
		{"timestamp edited", func(m *Message) { m.Timestamp = "2025-01-02T03:04:06.000000006Z" }, ErrSignatureMismatch},
		{"other author", func(m *Message) { m.Author = hex.EncodeToString(otherKey(t, 7).Public().(ed25519.PublicKey)) }, ErrSignatureMismatch},
		{"signature flipped", func(m *Message) { m.Signature = "0" + m.Signature[1:] }, ErrSignatureMismatch},
		{"too large", func(m *Message) { *m = Sign(testKey(t), strings.Repeat("x", MaxContentBytes+1), time.Now()) }, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := good
			tc.mutate(&m)
			err := m.Verify()
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIDDistinct(t *testing.T) {
	k := testKey(t)
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Sign(k, "ab", ts)
	ids := map[string]string{}
	for name, m := range map[string]Message{
		"a":               a,
		"other content":   Sign(k, "ab ", ts),
		"other time":      Sign(k, "ab", ts.Add(time.Nanosecond)),
		"other key":       Sign(otherKey(t, 1), "ab", ts),
		"tampered":        {Content: "ba", Author: a.Author, Timestamp: a.Timestamp, Signature: a.Signature},
		"field shift":     {Content: "a", Author: "b" + a.Author, Timestamp: a.Timestamp, Signature: a.Signature},
		"only sig change": {Content: a.Content, Author: a.Author, Timestamp: a.Timestamp, Signature: strings.Repeat("0", 128)},
	} {
		id := m.ID()
		if !IsID(id) {
			t.Fatalf("%s: ID %q is not 64 hex", name, id)
		}
		if prev, dup := ids[id]; dup {
			t.Fatalf("%s and %s share ID %s", name, prev, id)
		}
		ids[id] = name
	}
	if a.ID() != a.ID() {
		t.Fatal("ID not stable")
	}
}
