package bench

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/mmogit/mmogit/internal/discovery"
	"github.com/mmogit/mmogit/internal/onion"
)

// microDuration is how long each in-process loop runs.
const microDuration = 300 * time.Millisecond

// nsPerOp runs f in growing batches for at least d and returns the mean
// nanoseconds per call. It is testing.Benchmark without the testing
// package in the binary.
func nsPerOp(d time.Duration, f func()) float64 {
	n, total := 1, 0
	start := time.Now()
	for time.Since(start) < d {
		for range n {
			f()
		}
		total += n
		n *= 2
	}
	return float64(time.Since(start).Nanoseconds()) / float64(total)
}

// OnionEncode is one v3 address encoding (SHA3 checksum + base32).
func OnionEncode(pub ed25519.PublicKey) func() {
	return func() { onion.Encode(pub) }
}

// OnionVerify checks that addr is a valid v3 address (base32, version,
// SHA3 checksum) and that it encodes pub, as a peer's advertised address is
// checked against its key.
func OnionVerify(addr string, pub ed25519.PublicKey) func() {
	return func() {
		if err := onion.Verify(addr, pub); err != nil {
			panic(err) // a fixture that stops verifying is a bug here
		}
	}
}

// AdVerify verifies one signed advertisement (structure, onion address,
// signature) at now.
func AdVerify(ad *discovery.Advertisement, now time.Time) func() {
	return func() {
		if err := discovery.Verify(ad, now); err != nil {
			panic(err) // a fixture that stops verifying is a bug here
		}
	}
}

// Ed25519Verify is the bare signature check an advertisement carries.
func Ed25519Verify(pub ed25519.PublicKey, msg, sig []byte) func() {
	return func() { ed25519.Verify(pub, msg, sig) }
}

// sampleAd signs an advertisement like an agent's.
func sampleAd() (discovery.Advertisement, []byte, error) {
	id := newIdentity()
	ad, err := discovery.Sign(id, []string{"memory_sync", "chat"}, nil, 1, time.Now(), time.Hour)
	if err != nil {
		return ad, nil, fmt.Errorf("bench: %w", err)
	}
	msg, err := ad.SigningBytes()
	if err != nil {
		return ad, nil, fmt.Errorf("bench: %w", err)
	}
	return ad, msg, nil
}

// measureMicro runs the in-process loops.
func measureMicro() ([]Row, error) {
	ad, msg, err := sampleAd()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	enc := nsPerOp(microDuration, OnionEncode(ad.PubKey))
	over := nsPerOp(microDuration, OnionVerify(ad.OnionAddress, ad.PubKey))
	verify := nsPerOp(microDuration, AdVerify(&ad, now))
	bare := nsPerOp(microDuration, Ed25519Verify(ad.PubKey, msg, ad.Signature))
	return []Row{
		Solo("onion_encode_ns", "ns", enc, "onion.Encode: SHA3-256 checksum + base32"),
		Solo("onion_verify_ns", "ns", over, "onion.Verify: base32 decode, version, SHA3-256 checksum, key compare"),
		NewRow("ad_verify_per_s", "1/s", 1e9/verify, 1e9/bare, "discovery.Verify vs bare ed25519.Verify of its signing bytes"),
	}, nil
}
