package syncproto

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sort"
	"strings"

	"github.com/mmogit/mmogit/internal/memory"
)

// Range reconciliation (protocol version 2). An author's IDs form a
// 16-ary tree by hex prefix: the node with prefix p holds the IDs starting
// with p, and its digest is [digest] of them, so the root's digest is the
// Summary's. Where a node differs, both sides either send their IDs in it
// (a leaf) or send the (count, digest) of its 16 children (Buckets) and
// recurse into the children that differ. Only the differing paths are
// walked, so one new memory among 10,000 costs two Buckets and a few dozen
// IDs each way instead of 10,000 IDs.
//
// Both sides decide leaf or expand from values both know — the two counts
// for the node and its depth — so they agree without a round trip.
const (
	// fanout is the number of children of a node: one per hex digit.
	fanout = 16
	// leafMax: a node where either side holds at most this many IDs is a
	// leaf. An ID costs ~67 bytes on the wire and a Buckets frame ~1.6 KB,
	// so splitting smaller nodes would cost more than it saves.
	leafMax = 64
	// maxDepth caps the prefix length: a node this deep is a leaf whatever
	// its counts. 16^6 leaves of up to 64 IDs cover a billion IDs per
	// author; the cap bounds what a peer claiming huge counts can make us
	// walk.
	maxDepth = 6
)

// nodeKey names one node of one author's tree.
type nodeKey struct {
	author string
	prefix string // lowercase hex, at most maxDepth characters
}

// bucketSum is a node's count and digest; the digest is empty for an
// empty node.
type bucketSum struct {
	Count  int    `json:"count"`
	Digest string `json:"digest,omitempty"`
}

// bucketsMsg carries the 16 children of a node: Buckets[i] is prefix+hex(i).
type bucketsMsg struct {
	Author  string      `json:"author"`
	Prefix  string      `json:"prefix"`
	Buckets []bucketSum `json:"buckets"`
}

// idStream checks a peer's ID list for one node as it arrives, without
// keeping it: the IDs must be ascending, inside the node, and hash to the
// count and digest the peer claimed for the node.
type idStream struct {
	claim bucketSum
	h     hash.Hash // nil until the first part arrives
	got   int
	last  string
}

func newDigester() hash.Hash {
	h := sha256.New()
	h.Write([]byte("mmogit-sync-summary-v1\x00"))
	return h
}

// digest is the Summary digest of sorted IDs (see the package doc).
func digest(ids []string) string {
	h := newDigester()
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sumOf(ids []string) bucketSum {
	if len(ids) == 0 {
		return bucketSum{}
	}
	return bucketSum{Count: len(ids), Digest: digest(ids)}
}

// inNode returns the part of sorted ids that starts with prefix.
func inNode(ids []string, prefix string) []string {
	if prefix == "" {
		return ids
	}
	lo := sort.SearchStrings(ids, prefix)
	// "g" sorts after every hex digit, so prefix+"g" bounds the range.
	hi := lo + sort.SearchStrings(ids[lo:], prefix+"g")
	return ids[lo:hi]
}

// children splits the sorted ids of the node with prefix into its 16
// children.
func children(ids []string, prefix string) [fanout][]string {
	var out [fanout][]string
	d := len(prefix)
	for i := 0; i < len(ids); {
		c := hexVal(ids[i][d])
		j := i + sort.Search(len(ids)-i, func(k int) bool { return hexVal(ids[i+k][d]) > c })
		out[c] = ids[i:j]
		i = j
	}
	return out
}

func hexVal(c byte) int {
	if c >= 'a' {
		return int(c-'a') + 10
	}
	return int(c - '0')
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validDigest(d string) bool { return len(d) == 2*sha256.Size && isLowerHex(d) }

// reconcile handles a node whose summaries differ: mine are our IDs in it,
// peer the peer's claim. Version 1 peers get whole ID lists at the root.
func (s *session) reconcile(key nodeKey, mine []string, peer bucketSum) error {
	if s.version >= 2 && min(len(mine), peer.Count) > leafMax && len(key.prefix) < maxDepth {
		kids := children(mine, key.prefix)
		msg := bucketsMsg{Author: key.author, Prefix: key.prefix, Buckets: make([]bucketSum, fanout)}
		for i, ids := range kids {
			msg.Buckets[i] = sumOf(ids)
		}
		s.expectBuckets[key] = peer
		return s.send(TypeBuckets, msg)
	}
	if peer.Count > 0 {
		s.expectIDs[key] = &idStream{claim: peer}
	}
	for len(mine) > 0 {
		n := min(len(mine), idsPerFrame)
		if err := s.send(TypeIDs, idsMsg{Author: key.author, Prefix: key.prefix, IDs: mine[:n], More: n < len(mine)}); err != nil {
			return err
		}
		mine = mine[n:]
	}
	return nil
}

// onBuckets compares the peer's children of a node we expanded with ours
// and recurses into those that differ. The children must add up to the
// peer's claim for the node and must not all match ours (then the node
// would not have differed): a peer caught lying is a protocol violation.
func (s *session) onBuckets(m NetworkMessage) error {
	var p bucketsMsg
	if err := decodePayload(m, &p); err != nil {
		return err
	}
	key := nodeKey{p.Author, p.Prefix}
	claim, ok := s.expectBuckets[key]
	if !ok {
		return protoErr("unexpected buckets for author %.16q prefix %.8q", p.Author, p.Prefix)
	}
	delete(s.expectBuckets, key)
	if len(p.Buckets) != fanout {
		return protoErr("author %.16s prefix %q: %d buckets, want %d", p.Author, p.Prefix, len(p.Buckets), fanout)
	}
	total := 0
	for i, b := range p.Buckets {
		if b.Count < 0 || (b.Count == 0) != (b.Digest == "") || b.Digest != "" && !validDigest(b.Digest) {
			return protoErr("author %.16s prefix %q: bad bucket %x", p.Author, p.Prefix, i)
		}
		if b.Count > claim.Count-total { // checked this way round, it cannot overflow
			return protoErr("author %.16s prefix %q: buckets hold more than the node's %d ids", p.Author, p.Prefix, claim.Count)
		}
		total += b.Count
	}
	if total != claim.Count {
		return protoErr("author %.16s prefix %q: buckets hold %d ids, the node %d", p.Author, p.Prefix, total, claim.Count)
	}
	kids := children(inNode(s.inv[p.Author], p.Prefix), p.Prefix)
	differ := 0
	for i, b := range p.Buckets {
		if sumOf(kids[i]) == b {
			continue
		}
		differ++
		child := nodeKey{p.Author, p.Prefix + string("0123456789abcdef"[i])}
		if err := s.reconcile(child, kids[i], b); err != nil {
			return err
		}
	}
	if differ == 0 {
		return protoErr("author %.16s prefix %q: buckets all match ours, yet the node's digest differs", p.Author, p.Prefix)
	}
	return nil
}

// onIDs checks one part of the peer's ID list for a leaf and queues the
// IDs we lack.
func (s *session) onIDs(m NetworkMessage) error {
	var p idsMsg
	if err := decodePayload(m, &p); err != nil {
		return err
	}
	key := nodeKey{p.Author, p.Prefix}
	st, ok := s.expectIDs[key]
	if !ok {
		return protoErr("unexpected id list for author %.16q prefix %.8q", p.Author, p.Prefix)
	}
	if st.got+len(p.IDs) > st.claim.Count {
		return protoErr("author %.16s prefix %q: more ids than the %d claimed", p.Author, p.Prefix, st.claim.Count)
	}
	if st.h == nil {
		st.h = newDigester()
	}
	for _, id := range p.IDs {
		if !memory.IsID(id) || !strings.HasPrefix(id, p.Prefix) {
			return protoErr("bad message id %.70q for prefix %q", id, p.Prefix)
		}
		if id <= st.last {
			return protoErr("author %.16s prefix %q: ids not strictly ascending", p.Author, p.Prefix)
		}
		st.last = id
		st.h.Write([]byte(id))
		st.h.Write([]byte{'\n'})
		if !s.have[id] && !s.requested[id] {
			s.want = append(s.want, id)
			s.requested[id] = true
		}
	}
	st.got += len(p.IDs)
	if p.More {
		return nil
	}
	delete(s.expectIDs, key)
	if st.got != st.claim.Count || hex.EncodeToString(st.h.Sum(nil)) != st.claim.Digest {
		return protoErr("author %.16s prefix %q: id list does not match its summary", p.Author, p.Prefix)
	}
	return nil
}
