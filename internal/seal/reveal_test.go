package seal

import (
	"bytes"
	"crypto/ed25519"
	"testing"
)

func TestReveal(t *testing.T) {
	me := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32))
	toMe, err := Seal("for me", []ed25519.PublicKey{me.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	toOther, err := Seal("for the other", []ed25519.PublicKey{other.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	broken := Prefix + "not base64 at all!"
	for _, tc := range []struct {
		name                string
		c                   string
		priv                ed25519.PrivateKey
		text                string
		encrypted, readable bool
		marker              string
	}{
		{"plain", "hello", me, "hello", false, true, ""},
		{"plain without a key", "hello", nil, "hello", false, true, ""},
		{"sealed to us", toMe, me, "for me", true, true, ""},
		{"sealed to another", toOther, me, toOther, true, false, MarkNotForYou},
		{"sealed, no key here", toMe, nil, toMe, true, false, MarkNoKey},
		{"malformed", broken, me, broken, true, false, MarkMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, enc, readable, marker := Reveal(tc.c, tc.priv)
			if text != tc.text || enc != tc.encrypted || readable != tc.readable || marker != tc.marker {
				t.Errorf("Reveal = %q, %v, %v, %q; want %q, %v, %v, %q", text, enc, readable, marker, tc.text, tc.encrypted, tc.readable, tc.marker)
			}
		})
	}
}
