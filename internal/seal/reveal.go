package seal

import (
	"crypto/ed25519"
	"errors"
)

// Markers shown to people instead of content this identity cannot read.
const (
	MarkNotForYou = "[encrypted: not addressed to you]"
	MarkMalformed = "[encrypted: malformed]"
	MarkNoKey     = "[encrypted: no identity here to decrypt with]"
)

// Reveal is what a reader shows for stored content c: plain content as
// is; sealed content decrypted with priv when it is addressed to it, else
// c itself (the ciphertext exactly as signed) with the marker that says
// why (priv may be nil: no identity here). The CLI, the MCP server and the
// status page all read through here.
func Reveal(c string, priv ed25519.PrivateKey) (text string, encrypted, readable bool, marker string) {
	if !IsSealed(c) {
		return c, false, true, ""
	}
	if priv == nil {
		return c, true, false, MarkNoKey
	}
	pt, err := Open(c, priv)
	switch {
	case err == nil:
		return pt, true, true, ""
	case errors.Is(err, ErrNotRecipient):
		return c, true, false, MarkNotForYou
	default:
		return c, true, false, MarkMalformed
	}
}
