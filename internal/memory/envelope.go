package memory

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/mmogit/mmogit/internal/refenvelope"
)

// OpenEnvelopes returns es with each reference mmogit encrypted envelope
// that priv's identity sealed replaced by the signed message inside it:
// Opened true, ID, Message, Valid and Err as for any stored message, and
// Envelope still set. Envelopes sealed by anyone else, and all envelopes
// when priv is nil, are left as they are (Err [ErrEnvelope]). The inner
// message must be signed by priv's own key: the envelope key is that
// identity's seed, so nobody else could have sealed it, and a message
// inside signed by another key is reported as ErrBadAuthor.
func OpenEnvelopes(es []Entry, priv ed25519.PrivateKey) []Entry {
	if priv == nil {
		return es
	}
	key := refenvelope.Key(priv)
	self := hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	var out []Entry
	for i, e := range es {
		if e.Envelope == nil || e.Opened {
			continue
		}
		pt, err := e.Envelope.Open(key)
		if err != nil {
			continue // not ours: stays unreadable
		}
		if out == nil {
			out = append([]Entry(nil), es...) // never change the caller's (cached) slice
		}
		o := Entry{Branch: e.Branch, Path: e.Path, Envelope: e.Envelope, Opened: true}
		m, err := decodeMessage(pt)
		switch {
		case err != nil:
			o.Message, o.Err = Message{Timestamp: e.Envelope.Timestamp}, fmt.Errorf("decrypted envelope: %w", err)
		default:
			o.Message, o.ID = m, m.ID()
			o.Err = m.Verify()
			if o.Err == nil && m.Author != self {
				o.Err = fmt.Errorf("%w: envelope sealed with this identity's key holds a message signed by %s", ErrBadAuthor, m.Author)
			}
			o.Valid = o.Err == nil
		}
		out[i] = o
	}
	if out == nil {
		return es
	}
	return out
}
