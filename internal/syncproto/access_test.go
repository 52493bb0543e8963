package syncproto

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"
)

// TestAccessWaitsForProof: with Options.Access, a peer that names a key
// in its hello but cannot prove it never sees a summary, and one that
// proves it gets the store Access chose for that key.
func TestAccessWaitsForProof(t *testing.T) {
	self, claimed := key(1), key(2)
	full := newStore(t, self, 3, "private")
	empty := newStore(t, self, 0, "")
	access := func(peer ed25519.PublicKey) (Syncer, bool, error) {
		if peer.Equal(claimed.Public().(ed25519.PublicKey)) {
			return full, true, nil
		}
		return empty, true, nil
	}

	t.Run("claims a key it cannot prove", func(t *testing.T) {
		a, b := pipePair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := Sync(ctx, a, nil, Options{Identity: self, RequireAuth: true, Access: access})
			errc <- err
		}()
		p := newRawPeer(t, b)
		nonce := make([]byte, 32)
		rand.Read(nonce)
		p.send(TypeHello, helloMsg{PubKey: hex.EncodeToString(claimed.Public().(ed25519.PublicKey)), Nonce: hex.EncodeToString(nonce), Version: Version})
		p.expect(TypeHello, nil)
		p.expect(TypeAuth, nil)
		// Give a summary every chance to arrive before the bad proof.
		select {
		case m := <-p.in:
			t.Fatalf("got %s before proving the key", m.Type)
		case <-time.After(300 * time.Millisecond):
		}
		p.send(TypeAuth, authMsg{Signature: hex.EncodeToString(make([]byte, 64))})
		if err := <-errc; err == nil {
			t.Fatal("session with a forged proof succeeded")
		}
		a.Close() // ends the raw peer's reader, so p.in closes
		for m := range p.in {
			if m.Type == TypeSummary {
				t.Fatalf("summary sent to a peer that failed its proof: %s", m.Payload)
			}
		}
	})

	t.Run("proves its key", func(t *testing.T) {
		a, b := pipePair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		peerStore := newStore(t, claimed, 0, "")
		errc := make(chan error, 1)
		go func() {
			_, err := Sync(ctx, b, peerStore, Options{Identity: claimed})
			errc <- err
		}()
		st, err := Sync(ctx, a, nil, Options{Identity: self, RequireAuth: true, Access: access})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if st.MessagesSent != 3 {
			t.Errorf("sent %d, want the 3 of the store chosen for the proven key", st.MessagesSent)
		}
	})
}
