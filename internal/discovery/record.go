package discovery

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	record "github.com/libp2p/go-libp2p-record"
	mh "github.com/multiformats/go-multihash"
)

// Namespace is the DHT record namespace of advertisements.
const Namespace = "mmogit-ad"

// keyPrefix starts every advertisement record key.
const keyPrefix = "/" + Namespace + "/"

// serviceCIDPrefix is hashed in front of a service name so that service
// provider keys cannot collide with content other applications provide.
const serviceCIDPrefix = "mmogit/service/v1:"

// ErrKeyMismatch means a record is stored under another agent's key.
var ErrKeyMismatch = errors.New("discovery: record key does not match advertisement key")

// ErrReplayed means a valid advertisement was offered where a newer one (by
// Select's order: higher seq, then later timestamp) is already held: a
// replay of an old record, or a copy that missed a republish.
var ErrReplayed = errors.New("discovery: advertisement older than one already held (replayed)")

// RecordKey is the DHT key of pub's advertisement:
// "/mmogit-ad/" + 64 lowercase hex characters of the Ed25519 public key.
// Hex rather than the peer ID keeps the key equal to the mmogit author name.
func RecordKey(pub ed25519.PublicKey) string { return keyPrefix + hex.EncodeToString(pub) }

// keyPub parses a record key back into the public key it names.
func keyPub(key string) (ed25519.PublicKey, error) {
	h, ok := strings.CutPrefix(key, keyPrefix)
	if !ok || len(h) != 2*ed25519.PublicKeySize || strings.ToLower(h) != h {
		return nil, fmt.Errorf("%w: record key %q", ErrMalformed, key)
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%w: record key %q: %v", ErrMalformed, key, err)
	}
	return raw, nil
}

// ServiceCID is the content ID under which agents offering service publish
// provider records: CIDv1, raw codec, sha2-256 multihash of
// "mmogit/service/v1:" + service.
func ServiceCID(service string) (cid.Cid, error) {
	if err := ValidateService(service); err != nil {
		return cid.Undef, err
	}
	sum := sha256.Sum256([]byte(serviceCIDPrefix + service))
	hash, err := mh.Encode(sum[:], mh.SHA2_256)
	if err != nil {
		return cid.Undef, fmt.Errorf("discovery: service cid: %w", err)
	}
	return cid.NewCidV1(cid.Raw, hash), nil
}

// Validator is the DHT record validator for the "mmogit-ad" namespace. Every
// DHT node runs it on every record it is asked to store and on every record
// it fetches, so a forged, expired or misfiled advertisement is refused by
// each node on its own.
type Validator struct {
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

var _ record.Validator = Validator{}

func (v Validator) now() time.Time {
	if v.Clock != nil {
		return v.Clock()
	}
	return time.Now()
}

// Validate decodes and fully verifies value and checks that key names the
// advertisement's own public key.
func (v Validator) Validate(key string, value []byte) error {
	pub, err := keyPub(key)
	if err != nil {
		return err
	}
	ad, err := DecodeVerify(value, v.now())
	if err != nil {
		return err
	}
	if !bytes.Equal(pub, ad.PubKey) {
		return fmt.Errorf("%w: key %s, advertisement %x", ErrKeyMismatch, key, []byte(ad.PubKey))
	}
	return nil
}

// Replaces checks that offered may take the place of stored under key, the
// decision a DHT node makes on a PUT: nil if offered validates and is
// selected over stored (or is the same bytes), ErrReplayed if stored is newer,
// and offered's validation error if it is invalid. A stored value that
// does not decode never blocks a valid offer.
func (v Validator) Replaces(key string, offered, stored []byte) error {
	if err := v.Validate(key, offered); err != nil {
		return err
	}
	if bytes.Equal(offered, stored) {
		return nil
	}
	old, err := Decode(stored)
	if err != nil {
		return nil
	}
	ad, _ := Decode(offered) // validated above
	return staleAgainst(&ad, &old, offered, stored)
}

// staleAgainst is ErrReplayed when the held advertisement (held, raw heldRaw)
// beats ad (raw) under Select's order.
func staleAgainst(ad, held *Advertisement, raw, heldRaw []byte) error {
	if !better(held, ad, heldRaw, raw) {
		return nil
	}
	if ad.Seq < held.Seq {
		return fmt.Errorf("%w: seq %d, have %d", ErrReplayed, ad.Seq, held.Seq)
	}
	return fmt.Errorf("%w: seq %d timestamp %s, have timestamp %s", ErrReplayed, ad.Seq, ad.Timestamp.Format(time.RFC3339), held.Timestamp.Format(time.RFC3339))
}

// Select returns the index of the best of values: the highest Seq, then the
// newest Timestamp, then the lexicographically greatest encoding, so every
// node picks the same winner and a replayed older advertisement never wins.
// Values that do not decode lose to any that do.
//
// Select reports only an index: kad-dht calls it both to pick the best of
// the values a query returned and, on a PUT, with the offered value first
// and the stored one second, refusing the PUT when the answer is not 0 (a
// replay is refused by every honest node, whose error the sender sees only
// as a failed request). Replaces gives the same decision as ErrReplayed.
func (v Validator) Select(key string, values [][]byte) (int, error) {
	if len(values) == 0 {
		return 0, errors.New("discovery: select from no values")
	}
	best, bestAd := -1, Advertisement{}
	for i, val := range values {
		ad, err := Decode(val)
		if err != nil {
			continue
		}
		if best < 0 || better(&ad, &bestAd, val, values[best]) {
			best, bestAd = i, ad
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("%w: no decodable value for %s", ErrMalformed, key)
	}
	return best, nil
}

func better(a, b *Advertisement, araw, braw []byte) bool {
	switch {
	case a.Seq != b.Seq:
		return a.Seq > b.Seq
	case !a.Timestamp.Equal(b.Timestamp):
		return a.Timestamp.After(b.Timestamp)
	default:
		return bytes.Compare(araw, braw) > 0
	}
}
