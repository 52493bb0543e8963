package syncproto

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sort"
)

// Set sketches (protocol version 3). Each side's summary carries an
// invertible Bloom lookup table of every message ID it shows the peer.
// Subtracting the peer's sketch from ours and peeling it yields the
// symmetric difference when it is small (up to about sketchCells/2 IDs),
// so a side learns what the peer lacks as soon as the summaries cross and
// pushes it without the bucket walk, the ID lists or a request. Both sides
// subtract the same two sketches, so they agree on whether peeling
// succeeded and on the difference; when it fails (a large difference) they
// fall back to the bucket reconciliation of reconcile.go.
//
// A cell is (count int32, XOR of the 32-byte IDs, XOR of an 8-byte check
// hash of each ID). Each ID goes into one cell of each of sketchHashes
// equal sub-tables, chosen from SHA-256("mmogit-sync-sketch-v1\x00" || ID),
// whose last 8 bytes are the check hash that tells a pure cell (holding
// exactly one ID) from a mixture.
const (
	sketchHashes = 3
	sketchCells  = 3 * 16 // 48 cells × 44 bytes ≈ 2.8 KB of base64
	cellBytes    = 4 + 32 + 8
)

type sketchCell struct {
	count int32
	id    [32]byte
	check uint64
}

type sketch [sketchCells]sketchCell

func sketchHash(id []byte) (idx [sketchHashes]int, check uint64) {
	h := sha256.New()
	h.Write([]byte("mmogit-sync-sketch-v1\x00"))
	h.Write(id)
	sum := h.Sum(nil)
	per := sketchCells / sketchHashes
	for i := range idx {
		idx[i] = i*per + int(binary.BigEndian.Uint32(sum[4*i:])%uint32(per))
	}
	return idx, binary.BigEndian.Uint64(sum[24:])
}

func (s *sketch) toggle(id []byte, sign int32) {
	idx, check := sketchHash(id)
	for _, i := range idx {
		c := &s[i]
		c.count += sign
		for j := range c.id {
			c.id[j] ^= id[j]
		}
		c.check ^= check
	}
}

// newSketch sketches the IDs of every author in inv. IDs are lowercase hex
// (memory.IsID); one that is not is left out (it cannot be in a valid
// store).
func newSketch(inv map[string][]string) *sketch {
	s := new(sketch)
	var id [32]byte
	for _, ids := range inv {
		for _, h := range ids {
			if n, err := hex.Decode(id[:], []byte(h)); err == nil && n == 32 {
				s.toggle(id[:], 1)
			}
		}
	}
	return s
}

func (s *sketch) encode() string {
	b := make([]byte, 0, sketchCells*cellBytes)
	for _, c := range s {
		b = binary.BigEndian.AppendUint32(b, uint32(c.count))
		b = append(b, c.id[:]...)
		b = binary.BigEndian.AppendUint64(b, c.check)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func decodeSketch(str string) (*sketch, error) {
	b, err := base64.StdEncoding.DecodeString(str)
	if err != nil || len(b) != sketchCells*cellBytes {
		return nil, errors.New("sketch must be base64 of 48 cells of 44 bytes")
	}
	s := new(sketch)
	for i := range s {
		c := b[i*cellBytes:]
		s[i].count = int32(binary.BigEndian.Uint32(c))
		copy(s[i].id[:], c[4:36])
		s[i].check = binary.BigEndian.Uint64(c[36:])
	}
	return s, nil
}

// diff peels ours minus theirs: mine are the IDs only we hold, theirs the
// IDs only the peer holds, both sorted. ok is false when the difference is
// too large to peel (or the peer's sketch is inconsistent).
func (s *sketch) diff(peer *sketch) (mine, theirs []string, ok bool) {
	var d sketch
	for i := range d {
		d[i].count = s[i].count - peer[i].count
		for j := range d[i].id {
			d[i].id[j] = s[i].id[j] ^ peer[i].id[j]
		}
		d[i].check = s[i].check ^ peer[i].check
	}
	seen := map[string]bool{}
	for progress := true; progress; {
		progress = false
		for i := range d {
			c := d[i]
			if c.count != 1 && c.count != -1 {
				continue
			}
			idx, check := sketchHash(c.id[:])
			if check != c.check || !contains(idx, i) {
				continue
			}
			h := hex.EncodeToString(c.id[:])
			if seen[h] || len(seen) > sketchCells {
				return nil, nil, false
			}
			seen[h] = true
			if c.count == 1 {
				mine = append(mine, h)
			} else {
				theirs = append(theirs, h)
			}
			d.toggle(c.id[:], -c.count)
			progress = true
		}
	}
	for _, c := range d {
		if c != (sketchCell{}) {
			return nil, nil, false
		}
	}
	sort.Strings(mine)
	sort.Strings(theirs)
	return mine, theirs, true
}

func contains(idx [sketchHashes]int, i int) bool {
	for _, j := range idx {
		if j == i {
			return true
		}
	}
	return false
}
