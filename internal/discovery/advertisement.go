package discovery

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/onion"
	ma "github.com/multiformats/go-multiaddr"
)

// SigningContext starts every advertisement's signing bytes. The trailing
// NUL ends the context so no field can extend it, and the version lets a
// future format be signed under a different context without ambiguity.
const SigningContext = "mmogit/advertisement/v1\x00"

// Limits on an advertisement. They bound what a DHT node stores for a
// stranger and what a verifier has to parse.
const (
	MaxServices    = 32
	MaxServiceLen  = 64
	MaxAddrs       = 8
	MaxAddrLen     = 256
	MaxRecordSize  = 8 << 10 // bytes of JSON accepted by Decode
	MaxLifetime    = 24 * time.Hour
	MaxClockSkew   = 5 * time.Minute
	minLifetime    = time.Second
	signatureBytes = ed25519.SignatureSize
)

// Errors returned by Verify and Decode, one per way an advertisement can be
// unacceptable, so callers can tell a stale advertisement (ErrExpired) from
// a forgery (ErrBadSignature, ErrOnionMismatch).
var (
	ErrMalformed     = errors.New("discovery: malformed advertisement")
	ErrBadSignature  = errors.New("discovery: bad advertisement signature")
	ErrOnionMismatch = errors.New("discovery: onion address does not match advertisement key")
	ErrExpired       = errors.New("discovery: advertisement expired")
	ErrFromFuture    = errors.New("discovery: advertisement timestamp in the future")
	// ErrNonCanonical means a record decodes but is not byte for byte the
	// canonical encoding (Encode) of what it decodes to: other member
	// names, order or case, duplicate or missing members, uppercase hex,
	// fractional seconds or offsets, escapes, whitespace. Only one encoding
	// of a signed advertisement is accepted, so nobody but the signer can
	// make a copy that DHT nodes would prefer (Validator.Select breaks
	// ties on the bytes).
	ErrNonCanonical = errors.New("discovery: advertisement not in canonical encoding")
)

// Advertisement is an agent's signed statement of where it can be reached
// and which services it offers. The onion address is derived from PubKey, so
// a verifier needs nothing but the advertisement itself.
type Advertisement struct {
	PubKey       ed25519.PublicKey
	OnionAddress string   // onion.Hostname(PubKey): 56 characters + ".onion"
	Services     []string // sorted, unique, each matching [a-z0-9_.-]{1,64}
	// Addrs are direct multiaddrs, in order of preference. They are empty
	// unless the agent's transport policy allows direct connections.
	Addrs     []string
	Seq       uint64 // higher wins; strictly increases across restarts
	Timestamp time.Time
	Expires   time.Time
	Signature []byte
}

// adJSON is the wire form; the names are stable (`--json tor discover`
// prints them).
type adJSON struct {
	PubKey       string   `json:"pubkey"`
	OnionAddress string   `json:"onion_address"`
	Services     []string `json:"services"`
	Addrs        []string `json:"addrs"`
	Seq          uint64   `json:"seq"`
	Timestamp    string   `json:"timestamp"`
	Expires      string   `json:"expires"`
	Signature    string   `json:"signature"`
}

// NormalizeServices validates services and returns them sorted and without
// duplicates, the form an advertisement carries.
func NormalizeServices(services []string) ([]string, error) {
	out := slices.Clone(services)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > MaxServices {
		return nil, fmt.Errorf("%w: %d services, at most %d", ErrMalformed, len(out), MaxServices)
	}
	for _, s := range out {
		if err := ValidateService(s); err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// ValidateService checks one service name: 1..64 bytes of [a-z0-9_.-].
func ValidateService(s string) error {
	if len(s) == 0 || len(s) > MaxServiceLen {
		return fmt.Errorf("%w: service name of %d bytes, want 1..%d", ErrMalformed, len(s), MaxServiceLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%w: service name %q: byte %q not in [a-z0-9_.-]", ErrMalformed, s, c)
		}
	}
	return nil
}

func validateAddrs(addrs []string) error {
	if len(addrs) > MaxAddrs {
		return fmt.Errorf("%w: %d addrs, at most %d", ErrMalformed, len(addrs), MaxAddrs)
	}
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if len(a) == 0 || len(a) > MaxAddrLen {
			return fmt.Errorf("%w: addr of %d bytes, want 1..%d", ErrMalformed, len(a), MaxAddrLen)
		}
		// Every byte must stand for itself in JSON, so that the canonical
		// encoding has no escapes (encoding/json escapes < > & as well).
		for i := 0; i < len(a); i++ {
			if c := a[i]; c <= ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
				return fmt.Errorf("%w: addr %q: byte %q not allowed", ErrMalformed, a, c)
			}
		}
		if seen[a] {
			return fmt.Errorf("%w: duplicate addr %q", ErrMalformed, a)
		}
		seen[a] = true
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("%w: addr %q: %v", ErrMalformed, a, err)
		}
		// Only the canonical text form is signed, so that two encoders
		// never disagree on the bytes of one address.
		if m.String() != a {
			return fmt.Errorf("%w: addr %q is not canonical (%q)", ErrMalformed, a, m.String())
		}
	}
	return nil
}

// Sign builds and signs an advertisement for id, valid from now (truncated
// to whole seconds, the precision that is signed) for ttl.
func Sign(id *identity.Identity, services, addrs []string, seq uint64, now time.Time, ttl time.Duration) (Advertisement, error) {
	svc, err := NormalizeServices(services)
	if err != nil {
		return Advertisement{}, err
	}
	if ttl < minLifetime || ttl > MaxLifetime {
		return Advertisement{}, fmt.Errorf("%w: ttl %s outside %s..%s", ErrMalformed, ttl, minLifetime, MaxLifetime)
	}
	if err := validateAddrs(addrs); err != nil {
		return Advertisement{}, err
	}
	ts := now.UTC().Truncate(time.Second)
	ad := Advertisement{
		PubKey:       slices.Clone(id.Public),
		OnionAddress: onion.Hostname(id.Public),
		Services:     svc,
		Addrs:        append([]string{}, addrs...),
		Seq:          seq,
		Timestamp:    ts,
		Expires:      ts.Add(ttl.Truncate(time.Second)),
	}
	msg, err := ad.SigningBytes()
	if err != nil {
		return Advertisement{}, err
	}
	ad.Signature = ed25519.Sign(id.Private, msg)
	return ad, nil
}

// SigningBytes is the exact message the signature covers
// (docs/advertisement.md):
//
//	"mmogit/advertisement/v1\x00"
//	u32be(len(pubkey))        pubkey (32 bytes)
//	u32be(len(onion_address)) onion_address (ASCII)
//	u32be(n_services)         n × (u32be(len) service)   sorted, unique
//	u32be(n_addrs)            n × (u32be(len) addr)      in given order
//	u64be(seq)
//	u64be(timestamp, unix seconds)
//	u64be(expires, unix seconds)
//
// It fails only for advertisements whose times are before 1970.
func (ad *Advertisement) SigningBytes() ([]byte, error) {
	ts, ex := ad.Timestamp.Unix(), ad.Expires.Unix()
	if ts < 0 || ex < 0 {
		return nil, fmt.Errorf("%w: time before 1970", ErrMalformed)
	}
	var b bytes.Buffer
	b.WriteString(SigningContext)
	field := func(p []byte) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		b.Write(p)
	}
	list := func(items []string) {
		b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(items))))
		for _, s := range items {
			field([]byte(s))
		}
	}
	field(ad.PubKey)
	field([]byte(ad.OnionAddress))
	list(ad.Services)
	list(ad.Addrs)
	var n [24]byte
	binary.BigEndian.PutUint64(n[0:], ad.Seq)
	binary.BigEndian.PutUint64(n[8:], uint64(ts))
	binary.BigEndian.PutUint64(n[16:], uint64(ex))
	b.Write(n[:])
	return b.Bytes(), nil
}

// checkStructure is everything Verify checks before any cryptography.
func (ad *Advertisement) checkStructure() error {
	if len(ad.PubKey) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key of %d bytes", ErrMalformed, len(ad.PubKey))
	}
	if len(ad.Signature) != signatureBytes {
		return fmt.Errorf("%w: signature of %d bytes", ErrMalformed, len(ad.Signature))
	}
	if _, err := onion.Parse(ad.OnionAddress); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if onion.Normalize(ad.OnionAddress)+onion.Suffix != ad.OnionAddress {
		return fmt.Errorf("%w: onion address %q not in canonical lowercase form", ErrMalformed, ad.OnionAddress)
	}
	svc, err := NormalizeServices(ad.Services)
	if err != nil {
		return err
	}
	if !slices.Equal(svc, ad.Services) {
		return fmt.Errorf("%w: services not sorted and unique", ErrMalformed)
	}
	if err := validateAddrs(ad.Addrs); err != nil {
		return err
	}
	if ad.Timestamp.Nanosecond() != 0 || ad.Expires.Nanosecond() != 0 {
		return fmt.Errorf("%w: sub-second times are not signed", ErrMalformed)
	}
	life := ad.Expires.Sub(ad.Timestamp)
	if life < minLifetime || life > MaxLifetime {
		return fmt.Errorf("%w: lifetime %s outside %s..%s", ErrMalformed, life, minLifetime, MaxLifetime)
	}
	return nil
}

// Verify checks ad completely, in this order: structure (ErrMalformed),
// signature (ErrBadSignature), onion address belongs to the signing key
// (ErrOnionMismatch), not expired at now (ErrExpired), timestamp at most
// MaxClockSkew after now (ErrFromFuture). Forgery is reported before
// staleness, so an expired forgery is still called a forgery.
func Verify(ad *Advertisement, now time.Time) error {
	if err := ad.checkStructure(); err != nil {
		return err
	}
	msg, err := ad.SigningBytes()
	if err != nil {
		return err
	}
	if !ed25519.Verify(ad.PubKey, msg, ad.Signature) {
		return fmt.Errorf("%w: from %x", ErrBadSignature, []byte(ad.PubKey))
	}
	if err := onion.Verify(ad.OnionAddress, ad.PubKey); err != nil {
		return fmt.Errorf("%w: %w", ErrOnionMismatch, err)
	}
	if !now.Before(ad.Expires) {
		return fmt.Errorf("%w: at %s (now %s)", ErrExpired, ad.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if ad.Timestamp.After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: %s is more than %s after %s", ErrFromFuture, ad.Timestamp.Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Offers reports whether ad lists service.
func (ad *Advertisement) Offers(service string) bool {
	_, ok := slices.BinarySearch(ad.Services, service)
	return ok
}

// MarshalJSON is Encode.
func (ad Advertisement) MarshalJSON() ([]byte, error) { return ad.Encode() }

// Encode returns the canonical wire form (docs/advertisement.md): compact
// JSON, the eight members in the documented order, hex in lowercase, times
// in UTC as whole seconds with "Z", seq in plain decimal, nil lists as [],
// no whitespace and nothing after the closing brace. For an advertisement
// that passes Verify no string needs a JSON escape, so these bytes are the
// only ones Decode accepts for it.
func (ad Advertisement) Encode() ([]byte, error) {
	j := adJSON{
		PubKey:       hex.EncodeToString(ad.PubKey),
		OnionAddress: ad.OnionAddress,
		Services:     ad.Services,
		Addrs:        ad.Addrs,
		Seq:          ad.Seq,
		Timestamp:    ad.Timestamp.UTC().Format(time.RFC3339),
		Expires:      ad.Expires.UTC().Format(time.RFC3339),
		Signature:    hex.EncodeToString(ad.Signature),
	}
	if j.Services == nil {
		j.Services = []string{}
	}
	if j.Addrs == nil {
		j.Addrs = []string{}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the wire form without verifying it; use Decode for
// untrusted input.
func (ad *Advertisement) UnmarshalJSON(data []byte) error {
	var j adJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	// Fields outside the signature would ride along unauthenticated in
	// every DHT node's store, so none are accepted.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var err error
	out := Advertisement{OnionAddress: j.OnionAddress, Services: j.Services, Addrs: j.Addrs, Seq: j.Seq}
	if out.PubKey, err = hex.DecodeString(j.PubKey); err != nil {
		return fmt.Errorf("%w: pubkey: %v", ErrMalformed, err)
	}
	if out.Signature, err = hex.DecodeString(j.Signature); err != nil {
		return fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	if out.Timestamp, err = time.Parse(time.RFC3339, j.Timestamp); err != nil {
		return fmt.Errorf("%w: timestamp: %v", ErrMalformed, err)
	}
	if out.Expires, err = time.Parse(time.RFC3339, j.Expires); err != nil {
		return fmt.Errorf("%w: expires: %v", ErrMalformed, err)
	}
	out.Timestamp, out.Expires = out.Timestamp.UTC(), out.Expires.UTC()
	if out.Services == nil {
		out.Services = []string{}
	}
	if out.Addrs == nil {
		out.Addrs = []string{}
	}
	*ad = out
	return nil
}

// Decode parses an advertisement from untrusted bytes (a DHT record value)
// without verifying it. Input over MaxRecordSize, that is not one JSON
// object of the wire form, or with trailing data is ErrMalformed; input
// that decodes but is not exactly the canonical encoding of the result
// (Encode) is ErrNonCanonical.
func Decode(data []byte) (Advertisement, error) {
	if len(data) > MaxRecordSize {
		return Advertisement{}, fmt.Errorf("%w: record of %d bytes, at most %d", ErrMalformed, len(data), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return Advertisement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return Advertisement{}, fmt.Errorf("%w: trailing data after advertisement", ErrMalformed)
	}
	var ad Advertisement
	if err := ad.UnmarshalJSON(raw); err != nil {
		return Advertisement{}, err
	}
	canon, err := ad.Encode()
	if err != nil {
		return Advertisement{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !bytes.Equal(canon, data) {
		return Advertisement{}, fmt.Errorf("%w: %s", ErrNonCanonical, firstDifference(data, canon))
	}
	return ad, nil
}

// firstDifference describes where data departs from the canonical bytes.
func firstDifference(data, canon []byte) string {
	i := 0
	for i < len(data) && i < len(canon) && data[i] == canon[i] {
		i++
	}
	show := func(b []byte) string {
		b = b[i:min(len(b), i+16)]
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("byte %d of %d is %s, canonical %s", i, len(data), show(data), show(canon))
}

// DecodeVerify is Decode followed by Verify.
func DecodeVerify(data []byte, now time.Time) (Advertisement, error) {
	ad, err := Decode(data)
	if err != nil {
		return Advertisement{}, err
	}
	if err := Verify(&ad, now); err != nil {
		return Advertisement{}, err
	}
	return ad, nil
}
