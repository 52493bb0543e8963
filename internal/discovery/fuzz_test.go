package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecodeVerify feeds arbitrary record values to the decoder and
// verifier a DHT node runs on strangers' input. It must never panic, must
// return one of the typed errors, and whatever decodes must be exactly its
// own canonical encoding (so no two accepted byte strings carry the same
// advertisement), and whatever verifies must validate again under its key.
func FuzzDecodeVerify(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "vectors.json")); err == nil {
		var vs []vector
		if json.Unmarshal(b, &vs) == nil {
			for _, v := range vs {
				f.Add([]byte(v.Record))
			}
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"pubkey":"00","onion_address":"","services":null,"addrs":null,"seq":0,"timestamp":"","expires":"","signature":""}`))
	now := time.Date(2026, 1, 2, 3, 30, 0, 0, time.UTC)
	v := Validator{Clock: func() time.Time { return now }}
	f.Fuzz(func(t *testing.T, data []byte) {
		typed := func(err error) {
			t.Helper()
			for _, kind := range []error{ErrMalformed, ErrNonCanonical, ErrBadSignature, ErrOnionMismatch, ErrExpired, ErrFromFuture} {
				if errors.Is(err, kind) {
					return
				}
			}
			t.Fatalf("untyped error %v", err)
		}
		if dec, err := Decode(data); err != nil {
			typed(err)
		} else if canon, err := dec.Encode(); err != nil || !bytes.Equal(canon, data) {
			t.Fatalf("Decode accepted a non-canonical encoding (%v):\n got %q\nwant %q", err, data, canon)
		}
		ad, err := DecodeVerify(data, now)
		if err != nil {
			typed(err)
			return
		}
		again, err := json.Marshal(ad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted record is not its canonical re-encoding:\n got %q\nwant %q", data, again)
		}
		if err := v.Validate(RecordKey(ad.PubKey), again); err != nil {
			t.Fatalf("re-encoded advertisement does not validate: %v\n%s", err, again)
		}
	})
}
