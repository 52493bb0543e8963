package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/trust"
)

// scope decides whose memories show and recall list: by default this
// identity's and those of peers in the trust list, with --all every
// author held (synced relays' and strangers' included), with --author one
// author named by its whole key, onion address, peer ID or trusted alias.
type scope struct {
	self   string // our key, hex; "" without an identity here
	list   *trust.List
	all    bool
	author string // resolved --author, hex; "" for none
}

func newScope(all bool, author string) (scope, error) {
	sc := scope{all: all}
	if _, err := os.Lstat(filepath.Join(g.configDir, identity.SeedFile)); !errors.Is(err, fs.ErrNotExist) {
		id, err := identity.Load(g.configDir)
		if err != nil {
			return sc, err
		}
		sc.self = id.PubHex()
	}
	l, err := trust.Load(g.configDir)
	if err != nil {
		return sc, err
	}
	sc.list = l
	if author != "" {
		pub, err := l.Resolve(author)
		if err != nil {
			return sc, &usageError{fmt.Errorf("--author: %w", err)}
		}
		sc.author = hex.EncodeToString(pub)
	}
	return sc, nil
}

// allowed reports whether messages by author (hex) are listed.
func (sc scope) allowed(author string) bool {
	if sc.author != "" {
		return author == sc.author
	}
	if sc.all || author == sc.self {
		return true
	}
	_, ok := sc.list.LookupHex(author)
	return ok
}

// authors is the set for memory.Filter.Authors: nil lists every author.
func (sc scope) authors() map[string]bool {
	if sc.all || sc.author != "" {
		return nil
	}
	set := map[string]bool{}
	if sc.self != "" {
		set[sc.self] = true
	}
	for _, e := range sc.list.Entries() {
		set[e.Key] = true
	}
	return set
}

// label names an author for people: a trusted alias, else the whole key
// (a prefix is cheap to grind, so it would name nobody for sure).
func (sc scope) label(author string) string {
	if e, ok := sc.list.LookupHex(author); ok && e.Alias != "" {
		return e.Alias
	}
	return author
}

// hiddenNote tells a person that messages were left out by default.
func (sc scope) hiddenNote(hidden int) {
	if hidden > 0 && !g.json {
		fmt.Fprintf(g.stderr, "%d messages by authors you do not trust are not shown; --all shows everything held\n", hidden)
	}
}
