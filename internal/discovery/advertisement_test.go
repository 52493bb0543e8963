package discovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// RFC 8032 test 1 and test 2 seeds: their onion addresses are checked
// against tor in docs/spec-notes.md.
const (
	seed1 = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	seed2 = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
	seed3 = "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7"
)

func idFromHex(t testing.TB, h string) *identity.Identity {
	t.Helper()
	seed, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return identity.FromSeed(seed)
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustSign(t testing.TB, id *identity.Identity, services, addrs []string, seq uint64, now time.Time, ttl time.Duration) Advertisement {
	t.Helper()
	ad, err := Sign(id, services, addrs, seq, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return ad
}

// resign recomputes the signature after a test edits ad, so that a check
// other than the signature is what fails.
func resign(t testing.TB, id *identity.Identity, ad Advertisement) Advertisement {
	t.Helper()
	msg, err := ad.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	ad.Signature = ed25519.Sign(id.Private, msg)
	return ad
}

func TestVerify(t *testing.T) {
	alice, mallory := idFromHex(t, seed1), idFromHex(t, seed2)
	good := mustSign(t, alice, []string{"memory_sync", "chat"}, []string{"/ip4/127.0.0.1/tcp/7420"}, 7, t0, time.Hour)
	tests := []struct {
		name string
		ad   func() Advertisement
		now  time.Time
		want error
	}{
		{"valid", func() Advertisement { return good }, t0.Add(time.Minute), nil},
		{"valid at signing time", func() Advertisement { return good }, t0, nil},
		{"valid with clock 4m behind", func() Advertisement { return good }, t0.Add(-4 * time.Minute), nil},
		{"from future", func() Advertisement { return good }, t0.Add(-6 * time.Minute), ErrFromFuture},
		{"expired at expiry", func() Advertisement { return good }, t0.Add(time.Hour), ErrExpired},
		{"expired", func() Advertisement { return good }, t0.Add(2 * time.Hour), ErrExpired},
		{"tampered service", func() Advertisement {
			ad := good
			ad.Services = []string{"chat", "memory_sync", "zzz"}
			return ad
		}, t0, ErrBadSignature},
		{"tampered seq", func() Advertisement { ad := good; ad.Seq++; return ad }, t0, ErrBadSignature},
		{"tampered expiry", func() Advertisement { ad := good; ad.Expires = ad.Expires.Add(time.Hour); return ad }, t0, ErrBadSignature},
		{"signed by another key", func() Advertisement {
			ad := good
			ad.Signature = mustSign(t, mallory, good.Services, good.Addrs, 7, t0, time.Hour).Signature
			return ad
		}, t0, ErrBadSignature},
		{"onion of another key", func() Advertisement {
			ad := good
			ad.OnionAddress = mallory.OnionAddress()
			return resign(t, alice, ad)
		}, t0, ErrOnionMismatch},
		{"short pubkey", func() Advertisement { ad := good; ad.PubKey = ad.PubKey[:31]; return ad }, t0, ErrMalformed},
		{"short signature", func() Advertisement { ad := good; ad.Signature = ad.Signature[:63]; return ad }, t0, ErrMalformed},
		{"onion bad checksum", func() Advertisement {
			ad := good
			b := []byte(ad.OnionAddress)
			b[3] ^= 1
			ad.OnionAddress = string(b)
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"onion without suffix", func() Advertisement {
			ad := good
			ad.OnionAddress = onion.Encode(alice.Public)
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"onion uppercase", func() Advertisement {
			ad := good
			ad.OnionAddress = strings.ToUpper(ad.OnionAddress)
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"services unsorted", func() Advertisement {
			ad := good
			ad.Services = []string{"memory_sync", "chat"}
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"service bad char", func() Advertisement {
			ad := good
			ad.Services = []string{"Chat"}
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"addr not multiaddr", func() Advertisement {
			ad := good
			ad.Addrs = []string{"127.0.0.1:7420"}
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"lifetime too long", func() Advertisement {
			ad := good
			ad.Expires = ad.Timestamp.Add(MaxLifetime + time.Second)
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"expires before timestamp", func() Advertisement {
			ad := good
			ad.Expires = ad.Timestamp.Add(-time.Second)
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		{"sub-second timestamp", func() Advertisement {
			ad := good
			ad.Timestamp = ad.Timestamp.Add(time.Millisecond)
			return ad
		}, t0, ErrMalformed},
		{"addr with a byte JSON would escape", func() Advertisement {
			ad := good
			ad.Addrs = []string{"/dns4/a<b/tcp/1"}
			return resign(t, alice, ad)
		}, t0, ErrMalformed},
		// The documented order: forgery before staleness, structure first.
		{"expired forgery (bad signature)", func() Advertisement {
			ad := good
			ad.Seq++
			return ad
		}, t0.Add(2 * time.Hour), ErrBadSignature},
		{"expired forgery (signed by another key)", func() Advertisement {
			ad := good
			ad.Signature = mustSign(t, mallory, good.Services, good.Addrs, 7, t0, time.Hour).Signature
			return ad
		}, t0.Add(2 * time.Hour), ErrBadSignature},
		{"expired, onion of another key", func() Advertisement {
			ad := good
			ad.OnionAddress = mallory.OnionAddress()
			return resign(t, alice, ad)
		}, t0.Add(2 * time.Hour), ErrOnionMismatch},
		{"from the future, onion of another key", func() Advertisement {
			ad := good
			ad.OnionAddress = mallory.OnionAddress()
			return resign(t, alice, ad)
		}, t0.Add(-time.Hour), ErrOnionMismatch},
		{"onion of another key, bad signature", func() Advertisement {
			ad := good
			ad.OnionAddress = mallory.OnionAddress()
			return ad
		}, t0, ErrBadSignature},
		{"expired, malformed and forged", func() Advertisement {
			ad := good
			ad.Services = []string{"memory_sync", "chat"}
			return ad
		}, t0.Add(2 * time.Hour), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ad := tt.ad()
			err := Verify(&ad, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			for _, other := range allKinds {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v; kinds must be distinct", err, other)
				}
			}
		})
	}
}

// allKinds are the typed errors of verification and the DHT validator;
// each is distinct from the others.
var allKinds = []error{ErrMalformed, ErrNonCanonical, ErrBadSignature, ErrOnionMismatch, ErrExpired, ErrFromFuture, ErrKeyMismatch, ErrReplayed}

func TestSignValidatesInput(t *testing.T) {
	id := idFromHex(t, seed1)
	long := strings.Repeat("a", MaxServiceLen+1)
	many := make([]string, MaxServices+1)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	tests := []struct {
		name     string
		services []string
		addrs    []string
		ttl      time.Duration
	}{
		{"empty service", []string{""}, nil, time.Hour},
		{"long service", []string{long}, nil, time.Hour},
		{"space in service", []string{"memory sync"}, nil, time.Hour},
		{"too many services", many, nil, time.Hour},
		{"ttl zero", []string{"chat"}, nil, 0},
		{"ttl too long", []string{"chat"}, nil, MaxLifetime + time.Second},
		{"bad addr", []string{"chat"}, []string{"nope"}, time.Hour},
		{"duplicate addr", []string{"chat"}, []string{"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/1"}, time.Hour},
		{"addr needing a JSON escape", []string{"chat"}, []string{"/dns4/a&b/tcp/1"}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Sign(id, tt.services, tt.addrs, 1, t0, tt.ttl); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Sign = %v, want ErrMalformed", err)
			}
		})
	}
	// Duplicates and order are normalized rather than refused.
	ad := mustSign(t, id, []string{"memory_sync", "chat", "chat"}, nil, 1, t0, time.Hour)
	if got := strings.Join(ad.Services, ","); got != "chat,memory_sync" {
		t.Errorf("services = %s, want chat,memory_sync", got)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	id := idFromHex(t, seed2)
	ad := mustSign(t, id, []string{"memory_sync"}, nil, 42, t0.Add(500*time.Millisecond), 30*time.Minute)
	raw, err := json.Marshal(ad)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"pubkey":`, `"onion_address":`, `"services":["memory_sync"]`, `"addrs":[]`, `"seq":42`, `"timestamp":"2026-01-02T03:04:05Z"`, `"expires":"2026-01-02T03:34:05Z"`, `"signature":`} {
		if !bytes.Contains(raw, []byte(k)) {
			t.Errorf("JSON %s lacks %s", raw, k)
		}
	}
	got, err := DecodeVerify(raw, t0)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(got)
	if !bytes.Equal(raw, again) {
		t.Errorf("round trip changed JSON:\n%s\n%s", raw, again)
	}
}

func TestDecodeRejects(t *testing.T) {
	id := idFromHex(t, seed1)
	ad := mustSign(t, id, []string{"chat"}, nil, 1, t0, time.Hour)
	raw, _ := json.Marshal(ad)
	if canon, _ := ad.Encode(); !bytes.Equal(raw, canon) {
		t.Fatalf("json.Marshal and Encode differ:\n%s\n%s", raw, canon)
	}
	if _, err := DecodeVerify(raw, t0); err != nil {
		t.Fatalf("canonical record: %v", err)
	}
	sub := func(old, new string) []byte {
		t.Helper()
		if !bytes.Contains(raw, []byte(old)) {
			t.Fatalf("record lacks %q", old)
		}
		return bytes.Replace(raw, []byte(old), []byte(new), 1)
	}
	pubHex, sigHex := hex.EncodeToString(ad.PubKey), hex.EncodeToString(ad.Signature)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"not json", []byte("mmogit"), ErrMalformed},
		{"array", []byte("[]"), ErrMalformed},
		{"trailing object", append(append([]byte{}, raw...), []byte(`{}`)...), ErrMalformed},
		{"trailing brace", append(append([]byte{}, raw...), '}'), ErrMalformed},
		{"unknown field", sub(`{"pubkey"`, `{"extra":1,"pubkey"`), ErrMalformed},
		{"bad hex", sub(`"pubkey":"`, `"pubkey":"zz`), ErrMalformed},
		{"bad time", sub(`2026-01-02T03:04:05Z`, `yesterday`), ErrMalformed},
		{"seq with fraction", sub(`"seq":1,`, `"seq":1.0,`), ErrMalformed},
		{"oversize", append(bytes.Repeat([]byte(" "), MaxRecordSize), raw...), ErrMalformed},

		// Each of these decodes to the same, validly signed advertisement;
		// only the canonical bytes are accepted.
		{"member name in upper case", sub(`"pubkey":`, `"PUBKEY":`), ErrNonCanonical},
		{"member name in mixed case", sub(`"signature":`, `"Signature":`), ErrNonCanonical},
		{"duplicate member", sub(`{"pubkey"`, `{"seq":2,"pubkey"`), ErrNonCanonical},
		{"duplicate member, same value", sub(`"seq":1,`, `"seq":1,"seq":1,`), ErrNonCanonical},
		{"missing addrs", sub(`"addrs":[],`, ``), ErrNonCanonical},
		{"null addrs", sub(`"addrs":[]`, `"addrs":null`), ErrNonCanonical},
		{"members reordered", sub(`"services":["chat"],"addrs":[]`, `"addrs":[],"services":["chat"]`), ErrNonCanonical},
		{"uppercase pubkey hex", sub(pubHex, strings.ToUpper(pubHex)), ErrNonCanonical},
		{"uppercase signature hex", sub(sigHex, strings.ToUpper(sigHex)), ErrNonCanonical},
		{"fractional seconds", sub(`"timestamp":"2026-01-02T03:04:05Z"`, `"timestamp":"2026-01-02T03:04:05.000Z"`), ErrNonCanonical},
		{"offset +01:00", sub(`"timestamp":"2026-01-02T03:04:05Z"`, `"timestamp":"2026-01-02T04:04:05+01:00"`), ErrNonCanonical},
		{"offset +00:00", sub(`"expires":"2026-01-02T04:04:05Z"`, `"expires":"2026-01-02T04:04:05+00:00"`), ErrNonCanonical},
		{"escaped character", sub(`["chat"]`, `["\u0063hat"]`), ErrNonCanonical},
		{"escaped dot", sub(`.onion"`, `\u002eonion"`), ErrNonCanonical},
		{"space after colon", sub(`"seq":1`, `"seq": 1`), ErrNonCanonical},
		{"seq with exponent", sub(`"seq":1,`, `"seq":1e0,`), ErrMalformed},
		{"leading whitespace", append([]byte(" "), raw...), ErrNonCanonical},
		{"trailing newline", append(append([]byte{}, raw...), '\n'), ErrNonCanonical},
		{"kilobytes of trailing whitespace", append(append([]byte{}, raw...), bytes.Repeat([]byte(" \t\r\n"), 1024)...), ErrNonCanonical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeVerify(tt.data, t0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeVerify = %v, want %v", err, tt.want)
			}
			for _, other := range allKinds {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if _, err := Decode(tt.data); !errors.Is(err, tt.want) {
				t.Errorf("Decode = %v, want %v", err, tt.want)
			}
			v := Validator{Clock: func() time.Time { return t0 }}
			if err := v.Validate(RecordKey(id.Public), tt.data); !errors.Is(err, tt.want) {
				t.Errorf("Validate = %v, want %v", err, tt.want)
			}
			// A non-canonical copy never displaces the original, whichever
			// side of it its bytes sort.
			for want, vals := range [][][]byte{{raw, tt.data}, {tt.data, raw}} {
				if got, err := v.Select(RecordKey(id.Public), vals); err != nil || got != want {
					t.Errorf("Select = %d, %v; want the canonical record (%d)", got, err, want)
				}
			}
		})
	}
}

func TestValidator(t *testing.T) {
	alice, mallory := idFromHex(t, seed1), idFromHex(t, seed2)
	v := Validator{Clock: func() time.Time { return t0 }}
	enc := func(ad Advertisement) []byte { b, _ := json.Marshal(ad); return b }
	old := enc(mustSign(t, alice, []string{"chat"}, nil, 1, t0, time.Hour))
	newer := enc(mustSign(t, alice, []string{"chat"}, nil, 2, t0.Add(-time.Minute), time.Hour))
	sameSeqLater := enc(mustSign(t, alice, []string{"chat"}, nil, 1, t0.Add(time.Second), time.Hour))

	if err := v.Validate(RecordKey(alice.Public), old); err != nil {
		t.Fatalf("Validate own key: %v", err)
	}
	if err := v.Validate(RecordKey(mallory.Public), old); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("Validate under another key = %v, want ErrKeyMismatch", err)
	}
	for _, key := range []string{"/pk/x", "/mmogit-ad/" + strings.ToUpper(alice.PubHex()), "/mmogit-ad/abc"} {
		if err := v.Validate(key, old); !errors.Is(err, ErrMalformed) {
			t.Errorf("Validate(%q) = %v, want ErrMalformed", key, err)
		}
	}
	selects := []struct {
		name   string
		values [][]byte
		want   int
	}{
		{"higher seq wins though older", [][]byte{old, newer}, 1},
		{"higher seq wins first", [][]byte{newer, old}, 0},
		{"same seq newer timestamp", [][]byte{old, sameSeqLater}, 1},
		{"garbage loses", [][]byte{[]byte("x"), old}, 1},
	}
	for _, tt := range selects {
		if got, err := v.Select(RecordKey(alice.Public), tt.values); err != nil || got != tt.want {
			t.Errorf("%s: Select = %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}

	// Replaces is the PUT decision: offered against what a node stores.
	forged := bytes.Replace(newer, []byte(`"seq":2`), []byte(`"seq":3`), 1)
	replaces := []struct {
		name            string
		offered, stored []byte
		want            error
	}{
		{"newer seq over older", newer, old, nil},
		{"replayed older seq over newer", old, newer, ErrReplayed},
		{"same seq, older timestamp over newer", old, sameSeqLater, ErrReplayed},
		{"same seq, newer timestamp over older", sameSeqLater, old, nil},
		{"same record again", old, old, nil},
		{"anything valid over garbage", old, []byte("x"), nil},
		{"forged higher seq over valid", forged, old, ErrBadSignature},
		{"another agent's record", enc(mustSign(t, mallory, []string{"chat"}, nil, 9, t0, time.Hour)), old, ErrKeyMismatch},
	}
	for _, tt := range replaces {
		err := v.Replaces(RecordKey(alice.Public), tt.offered, tt.stored)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: Replaces = %v, want %v", tt.name, err, tt.want)
		}
		for _, other := range allKinds {
			if other != tt.want && errors.Is(err, other) {
				t.Errorf("%s: error %v also matches %v", tt.name, err, other)
			}
		}
		// Replaces agrees with Select whenever both values are valid.
		if tt.want == nil || errors.Is(tt.want, ErrReplayed) {
			if i, _ := v.Select(RecordKey(alice.Public), [][]byte{tt.offered, tt.stored}); (i == 0) != (err == nil) && !bytes.Equal(tt.offered, tt.stored) {
				t.Errorf("%s: Select picks %d, Replaces says %v", tt.name, i, err)
			}
		}
	}
}

func TestServiceCID(t *testing.T) {
	a, err := ServiceCID("memory_sync")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ServiceCID("chat")
	if a.Equals(b) {
		t.Fatal("different services share a CID")
	}
	// Pinned so that other implementations can check their derivation:
	// CIDv1 raw sha2-256 of "mmogit/service/v1:memory_sync".
	if got, want := a.String(), vectorServiceCID; got != want {
		t.Errorf("ServiceCID(memory_sync) = %s, want %s", got, want)
	}
	if _, err := ServiceCID("Bad Name"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ServiceCID(bad) = %v", err)
	}
}

// vector is one entry of testdata/vectors.json and docs/advertisement.md.
type vector struct {
	Name         string   `json:"name"`
	SeedHex      string   `json:"seed_hex"`
	Services     []string `json:"services"`
	Addrs        []string `json:"addrs"`
	Seq          uint64   `json:"seq"`
	Now          string   `json:"now"`
	TTLSeconds   int64    `json:"ttl_seconds"`
	SigningBytes string   `json:"signing_bytes_hex"`
	Signature    string   `json:"signature_hex"`
	// Record is the exact record value, the canonical encoding; JSON is
	// the same object, for reading (the file is indented).
	Record string          `json:"record"`
	JSON   json.RawMessage `json:"json"`
}

var vectorInputs = []vector{
	{Name: "memory_sync only, no direct addresses", SeedHex: seed1, Services: []string{"memory_sync"}, Addrs: []string{}, Seq: 1, Now: "2026-01-02T03:04:05Z", TTLSeconds: 3600},
	{Name: "two services (given unsorted), one direct address", SeedHex: seed2, Services: []string{"memory_sync", "chat"}, Addrs: []string{"/ip4/127.0.0.1/tcp/7420"}, Seq: 1767323045000000000, Now: "2026-01-02T03:04:05Z", TTLSeconds: 1800},
	{Name: "no services", SeedHex: seed3, Services: []string{}, Addrs: []string{}, Seq: 18446744073709551615, Now: "2030-12-31T23:59:59Z", TTLSeconds: 86400},
}

func makeVector(t *testing.T, in vector) vector {
	t.Helper()
	now, err := time.Parse(time.RFC3339, in.Now)
	if err != nil {
		t.Fatal(err)
	}
	ad := mustSign(t, idFromHex(t, in.SeedHex), in.Services, in.Addrs, in.Seq, now, time.Duration(in.TTLSeconds)*time.Second)
	msg, err := ad.SigningBytes()
	if err != nil {
		t.Fatal(err)
	}
	out := in
	out.SigningBytes = hex.EncodeToString(msg)
	out.Signature = hex.EncodeToString(ad.Signature)
	out.JSON, _ = json.Marshal(ad)
	out.Record = string(out.JSON)
	return out
}

// TestVectors regenerates the published vectors from their inputs and
// checks them against testdata/vectors.json and docs/advertisement.md
// (go test -update rewrites the JSON file; the document is edited by
// hand). The document's own inputs (seed, services, addrs, seq, now, ttl)
// are parsed, so each of its vectors is checked to follow from what it
// states, not only to appear somewhere in it.
func TestVectors(t *testing.T) {
	var got []vector
	for _, in := range vectorInputs {
		got = append(got, makeVector(t, in))
	}
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []vector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "advertisement.md"))
	if err != nil {
		t.Fatal(err)
	}
	docVectors := parseDocVectors(t, string(doc))
	if len(want) != len(got) || len(docVectors) != len(got) {
		t.Fatalf("%d vectors on file, %d in the document, %d generated", len(want), len(docVectors), len(got))
	}
	for i, w := range want {
		g := got[i]
		var compact bytes.Buffer
		if err := json.Compact(&compact, w.JSON); err != nil {
			t.Fatal(err)
		}
		if compact.String() != w.Record {
			t.Errorf("vector %q: json and record differ:\n%s\n%s", w.Name, compact.Bytes(), w.Record)
		}
		w.JSON, g.JSON = nil, nil
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("vector %q changed:\n got %+v\nwant %+v", w.Name, g, w)
		}
		// The file's record must verify on its own, as another
		// implementation would read it.
		now, _ := time.Parse(time.RFC3339, w.Now)
		if _, err := DecodeVerify([]byte(w.Record), now); err != nil {
			t.Errorf("vector %q: %v", w.Name, err)
		}

		// The document: its inputs are the test's, and its outputs are
		// what those inputs produce.
		d := docVectors[i]
		in := vectorInputs[i]
		if d.Name != in.Name || d.SeedHex != in.SeedHex || fmt.Sprint(d.Services) != fmt.Sprint(in.Services) ||
			fmt.Sprint(d.Addrs) != fmt.Sprint(in.Addrs) || d.Seq != in.Seq || d.Now != in.Now || d.TTLSeconds != in.TTLSeconds {
			t.Errorf("document vector %d inputs %+v, want %+v", i+1, d, in)
		}
		fromDoc := makeVector(t, vector{SeedHex: d.SeedHex, Services: d.Services, Addrs: d.Addrs, Seq: d.Seq, Now: d.Now, TTLSeconds: d.TTLSeconds})
		if d.SigningBytes != fromDoc.SigningBytes {
			t.Errorf("document vector %d: signing bytes\n%s\nbut its inputs give\n%s", i+1, d.SigningBytes, fromDoc.SigningBytes)
		}
		if d.Signature != fromDoc.Signature {
			t.Errorf("document vector %d: signature %s, but its inputs give %s", i+1, d.Signature, fromDoc.Signature)
		}
		if d.Record != fromDoc.Record {
			t.Errorf("document vector %d: record\n%s\nbut its inputs give\n%s", i+1, d.Record, fromDoc.Record)
		}
		dnow, _ := time.Parse(time.RFC3339, d.Now)
		if _, err := DecodeVerify([]byte(d.Record), dnow); err != nil {
			t.Errorf("document vector %d record: %v", i+1, err)
		}
	}
	if !bytes.Contains(doc, []byte(vectorServiceCID)) {
		t.Errorf("docs/advertisement.md lacks the service CID vector %s", vectorServiceCID)
	}
}

// parseDocVectors reads the "### Vector N: name" sections of
// docs/advertisement.md: the input list, then three fenced blocks (signing
// bytes, signature, record).
func parseDocVectors(t *testing.T, doc string) []vector {
	t.Helper()
	var out []vector
	sections := strings.Split(doc, "\n### Vector ")
	if len(sections) < 2 {
		t.Fatal("docs/advertisement.md has no \"### Vector\" sections")
	}
	field := func(sec, re string) string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(sec)
		if m == nil {
			t.Fatalf("document vector section lacks %s:\n%s", re, sec)
		}
		return m[1]
	}
	for n, sec := range sections[1:] {
		if i := strings.Index(sec, "\n## "); i >= 0 {
			sec = sec[:i]
		}
		var v vector
		v.Name = field(sec, `^\d+: (.*)\n`)
		v.SeedHex = field(sec, "seed \\(hex\\): `([0-9a-f]+)`")
		if err := json.Unmarshal([]byte(field(sec, "services given: `(\\[.*?\\])`")), &v.Services); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(field(sec, "addrs: `(\\[.*?\\])`")), &v.Addrs); err != nil {
			t.Fatal(err)
		}
		var err error
		if v.Seq, err = strconv.ParseUint(field(sec, "seq: `(\\d+)`"), 10, 64); err != nil {
			t.Fatal(err)
		}
		v.Now = field(sec, "now: `([^`]+)`")
		if v.TTLSeconds, err = strconv.ParseInt(field(sec, `ttl: (\d+) s`), 10, 64); err != nil {
			t.Fatal(err)
		}
		blocks := regexp.MustCompile("(?s)```[a-z]*\n(.*?)\n```").FindAllStringSubmatch(sec, -1)
		if len(blocks) != 3 {
			t.Fatalf("document vector %d has %d code blocks, want 3 (signing bytes, signature, record)", n+1, len(blocks))
		}
		v.SigningBytes, v.Signature, v.Record = blocks[0][1], blocks[1][1], blocks[2][1]
		out = append(out, v)
	}
	return out
}

// vectorServiceCID is ServiceCID("memory_sync").
const vectorServiceCID = "bafkreihfv5aj3wnncbcr23z7v5ugyvghyn2t6o5vrkrwkqatikpjvcvt7a"

// TestCrossCheckPython runs testdata/crosscheck.py, an implementation of
// docs/advertisement.md in Python 3 with only its standard library (RFC
// 8032's reference Ed25519), against testdata/vectors.json. It is skipped
// where no working python3 is installed.
func TestCrossCheckPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if err := exec.Command(py, "-c", "import hashlib; hashlib.sha3_256").Run(); err != nil {
		t.Skipf("python3 does not run: %v", err)
	}
	out, err := exec.Command(py, filepath.Join("testdata", "crosscheck.py"), filepath.Join("testdata", "vectors.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("crosscheck.py: %v\n%s", err, out)
	}
	if n := bytes.Count(out, []byte(": ok\n")); n != len(vectorInputs) {
		t.Fatalf("crosscheck.py checked %d vectors, want %d:\n%s", n, len(vectorInputs), out)
	}
	t.Logf("%s", out)
}
