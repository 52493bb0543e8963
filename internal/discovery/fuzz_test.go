package discovery

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecodeVerify feeds arbitrary record values to the decoder and
// verifier a DHT node runs on strangers' input. It must never panic, must
// return one of the typed errors, and whatever verifies must re-encode to a
// value that verifies again under the same key.
func FuzzDecodeVerify(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "vectors.json")); err == nil {
		var vs []vector
		if json.Unmarshal(b, &vs) == nil {
			for _, v := range vs {
				f.Add([]byte(v.JSON))
			}
		}
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"pubkey":"00","onion_address":"","services":null,"addrs":null,"seq":0,"timestamp":"","expires":"","signature":""}`))
	now := time.Date(2026, 1, 2, 3, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		ad, err := DecodeVerify(data, now)
		if err != nil {
			for _, kind := range []error{ErrMalformed, ErrBadSignature, ErrOnionMismatch, ErrExpired, ErrFromFuture} {
				if errors.Is(err, kind) {
					return
				}
			}
			t.Fatalf("untyped error %v", err)
		}
		again, err := json.Marshal(ad)
		if err != nil {
			t.Fatal(err)
		}
		if err := (Validator{Clock: func() time.Time { return now }}).Validate(RecordKey(ad.PubKey), again); err != nil {
			t.Fatalf("re-encoded advertisement does not validate: %v\n%s", err, again)
		}
	})
}
