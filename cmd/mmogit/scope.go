package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/trust"
)

// newScope loads this identity (if any) and the trust list, and decides
// whose memories show and recall list (see trust.Scope).
func newScope(all bool, author string) (trust.Scope, error) {
	self := ""
	if _, err := os.Lstat(filepath.Join(g.configDir, identity.SeedFile)); !errors.Is(err, fs.ErrNotExist) {
		id, err := identity.Load(g.configDir)
		if err != nil {
			return trust.Scope{}, err
		}
		self = id.PubHex()
	}
	l, err := trust.Load(g.configDir)
	if err != nil {
		return trust.Scope{}, err
	}
	sc, err := trust.NewScope(self, l, all, author)
	if err != nil {
		return sc, &usageError{fmt.Errorf("--author: %w", err)}
	}
	return sc, nil
}

// hiddenNote tells a person that messages were left out by default.
func hiddenNote(hidden int) {
	if hidden > 0 && !g.json {
		fmt.Fprintf(g.stderr, "%d messages by authors you do not trust are not shown; --all shows everything held\n", hidden)
	}
}
