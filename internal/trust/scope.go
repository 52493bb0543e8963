package trust

import "encoding/hex"

// Scope is whose messages show and recall list: by default this identity's
// and those of peers in the trust list, with All every author held, with
// Author one author only.
type Scope struct {
	Self   string // our key, hex; "" without an identity
	List   *List
	All    bool
	Author string // the one author (hex), resolved; "" for none
}

// NewScope resolves author (alias, whole key, onion address or peer ID;
// never a prefix) against l. A resolution error is the caller's usage
// error.
func NewScope(self string, l *List, all bool, author string) (Scope, error) {
	sc := Scope{Self: self, List: l, All: all}
	if author != "" {
		pub, err := l.Resolve(author)
		if err != nil {
			return sc, err
		}
		sc.Author = hex.EncodeToString(pub)
	}
	return sc, nil
}

// Allowed reports whether messages by author (hex) are listed.
func (sc Scope) Allowed(author string) bool {
	if sc.Author != "" {
		return author == sc.Author
	}
	if sc.All || author == sc.Self {
		return true
	}
	_, ok := sc.List.LookupHex(author)
	return ok
}

// Authors is the set for memory.Filter.Authors: nil lists every author.
func (sc Scope) Authors() map[string]bool {
	if sc.All || sc.Author != "" {
		return nil
	}
	set := map[string]bool{}
	if sc.Self != "" {
		set[sc.Self] = true
	}
	for _, e := range sc.List.Entries() {
		set[e.Key] = true
	}
	return set
}

// Label names an author for people: a trusted alias, else the whole key
// (a prefix is cheap to grind, so it would name nobody for sure).
func (sc Scope) Label(author string) string {
	if e, ok := sc.List.LookupHex(author); ok && e.Alias != "" {
		return e.Alias
	}
	return author
}
