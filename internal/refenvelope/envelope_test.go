package refenvelope

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSealOpen(t *testing.T) {
	a := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	b := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	e, err := Seal([]byte("secret"), Key(a), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// serde's Vec<u8>: arrays of integers, not base64.
	if !bytes.Contains(data, []byte(`"nonce": [`)) || !bytes.Contains(data, []byte(`"recipient_hint": null`)) {
		t.Fatalf("not the reference's shape:\n%s", data)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := back.Open(Key(a))
	if err != nil || string(pt) != "secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := back.Open(Key(b)); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("other key: %v, want ErrNotOurs", err)
	}
	back.Ciphertext[0] ^= 1
	if _, err := back.Open(Key(a)); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("altered: %v, want ErrNotOurs", err)
	}
}

func TestParseRefuses(t *testing.T) {
	good := map[string]any{
		"version": 1, "nonce": make([]int, 24), "ciphertext": make([]int, 16),
		"recipient_hint": nil, "timestamp": "2025-08-20T12:00:00.5+00:00",
	}
	enc := func(edit func(m map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		edit(m)
		b, _ := json.Marshal(m)
		return b
	}
	if _, err := Parse(enc(func(map[string]any) {})); err != nil {
		t.Fatalf("good envelope refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"a signed message", []byte(`{"content":"x","author":"a","timestamp":"t","signature":"s"}`), `no "version"`},
		{"not json", []byte("hello"), "invalid"},
		{"version 2", enc(func(m map[string]any) { m["version"] = 2 }), "version 2"},
		{"short nonce", enc(func(m map[string]any) { m["nonce"] = make([]int, 12) }), "nonce of 12 bytes"},
		{"byte out of range", enc(func(m map[string]any) { m["nonce"] = append(make([]int, 23), 256) }), "not in 0..255"},
		{"no tag", enc(func(m map[string]any) { m["ciphertext"] = []int{1} }), "shorter than its tag"},
		{"no timestamp", enc(func(m map[string]any) { delete(m, "timestamp") }), `no "timestamp"`},
		{"bad timestamp", enc(func(m map[string]any) { m["timestamp"] = "yesterday" }), "timestamp"},
		{"extra field", enc(func(m map[string]any) { m["signature"] = "x" }), "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

func TestBranch(t *testing.T) {
	a := "1de352e44cd333672593f2334a730e180aaf290de89aa16d480de594e34e2961"
	if got := Branch(a); got != "users/1de352e44cd33367-encrypted" {
		t.Fatal(got)
	}
	if p, ok := BranchAuthorPrefix(Branch(a)); !ok || p != a[:16] {
		t.Fatal(p, ok)
	}
	for _, b := range []string{"users/1de352e4", "users/1de352e44cd3336z-encrypted", "x/1de352e44cd33367-encrypted"} {
		if _, ok := BranchAuthorPrefix(b); ok {
			t.Fatalf("%s accepted", b)
		}
	}
}
