package discovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// RFC 8032 test 1 and test 2 seeds: their onion addresses are checked
// against tor in DESIGN.md.
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ad := tt.ad()
			err := Verify(&ad, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrMalformed, ErrBadSignature, ErrOnionMismatch, ErrExpired, ErrFromFuture} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v; kinds must be distinct", err, other)
				}
			}
		})
	}
}

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
	raw, _ := json.Marshal(mustSign(t, id, []string{"chat"}, nil, 1, t0, time.Hour))
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not json", []byte("mmogit")},
		{"array", []byte("[]")},
		{"trailing object", append(append([]byte{}, raw...), []byte(`{}`)...)},
		{"trailing brace", append(append([]byte{}, raw...), '}')},
		{"unknown field", bytes.Replace(raw, []byte(`{"pubkey"`), []byte(`{"extra":1,"pubkey"`), 1)},
		{"bad hex", bytes.Replace(raw, []byte(`"pubkey":"`), []byte(`"pubkey":"zz`), 1)},
		{"bad time", bytes.Replace(raw, []byte(`2026-01-02T03:04:05Z`), []byte(`yesterday`), 1)},
		{"oversize", append(bytes.Repeat([]byte(" "), MaxRecordSize), raw...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.data); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
	// Whitespace around the object is fine.
	if _, err := DecodeVerify(append(append([]byte(" \n"), raw...), '\n'), t0); err != nil {
		t.Fatalf("DecodeVerify with whitespace: %v", err)
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
	Name         string          `json:"name"`
	SeedHex      string          `json:"seed_hex"`
	Services     []string        `json:"services"`
	Addrs        []string        `json:"addrs"`
	Seq          uint64          `json:"seq"`
	Now          string          `json:"now"`
	TTLSeconds   int64           `json:"ttl_seconds"`
	SigningBytes string          `json:"signing_bytes_hex"`
	Signature    string          `json:"signature_hex"`
	JSON         json.RawMessage `json:"json"`
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
	return out
}

// TestVectors regenerates the published vectors and checks them against
// testdata/vectors.json and docs/advertisement.md (go test -update
// rewrites the JSON file; the document is edited by hand).
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
	if len(want) != len(got) {
		t.Fatalf("%d vectors on file, %d generated", len(want), len(got))
	}
	for i, w := range want {
		g := got[i]
		var compact bytes.Buffer
		if err := json.Compact(&compact, w.JSON); err != nil {
			t.Fatal(err)
		}
		w.JSON = compact.Bytes()
		if g.SigningBytes != w.SigningBytes || g.Signature != w.Signature || !bytes.Equal(g.JSON, w.JSON) {
			t.Errorf("vector %q changed:\n got %s %s %s\nwant %s %s %s", w.Name, g.SigningBytes, g.Signature, g.JSON, w.SigningBytes, w.Signature, w.JSON)
		}
		// The file's JSON must verify on its own, as another implementation
		// would read it.
		now, _ := time.Parse(time.RFC3339, w.Now)
		if _, err := DecodeVerify(w.JSON, now); err != nil {
			t.Errorf("vector %q: %v", w.Name, err)
		}
		for _, s := range []string{w.SigningBytes, w.Signature, string(w.JSON)} {
			if !bytes.Contains(doc, []byte(s)) {
				t.Errorf("docs/advertisement.md lacks vector %q value %.40s…", w.Name, s)
			}
		}
	}
	if !bytes.Contains(doc, []byte(vectorServiceCID)) {
		t.Errorf("docs/advertisement.md lacks the service CID vector %s", vectorServiceCID)
	}
}

// vectorServiceCID is ServiceCID("memory_sync").
const vectorServiceCID = "bafkreihfv5aj3wnncbcr23z7v5ugyvghyn2t6o5vrkrwkqatikpjvcvt7a"
