package trust_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/trust"
)

func TestListEdits(t *testing.T) {
	dir := t.TempDir()
	bob, carol := key(10).Public().(ed25519.PublicKey), key(11).Public().(ed25519.PublicKey)
	if _, err := trust.Set(dir, bob, true, false, "bob", "test"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, trust.File))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("trust.json: %v, mode %v; want 0600", err, fi.Mode())
	}
	// Grant widens, Set replaces.
	if e, err := trust.Grant(dir, bob, false, true, "", "test"); err != nil || !e.Read || !e.Write || e.Alias != "bob" {
		t.Fatalf("Grant = %+v, %v: want read+write, alias kept", e, err)
	}
	if e, err := trust.Set(dir, bob, false, true, "", "test"); err != nil || e.Read || !e.Write {
		t.Fatalf("Set = %+v, %v: want write only", e, err)
	}
	if _, err := trust.Set(dir, carol, true, true, "bob", "test"); err == nil || !strings.Contains(err.Error(), "already names") {
		t.Fatalf("a second peer took alias bob: %v", err)
	}
	l, err := trust.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bob", onion.Hostname(bob), hexKey(key(10))} {
		if pub, err := l.Resolve(name); err != nil || !pub.Equal(bob) {
			t.Errorf("Resolve(%q) = %x, %v", name, pub, err)
		}
	}
	if _, err := l.Resolve(hexKey(key(10))[:8]); err == nil {
		t.Errorf("a short prefix resolved")
	}
	if _, err := trust.Remove(dir, onion.Hostname(carol)); err == nil {
		t.Errorf("removing an unknown peer succeeded")
	}
	if e, err := trust.Remove(dir, "bob"); err != nil || e.Alias != "bob" {
		t.Fatalf("Remove(bob) = %+v, %v", e, err)
	}
	if l, _ := trust.Load(dir); len(l.Entries()) != 0 {
		t.Errorf("after remove: %+v", l.Entries())
	}
}

// TestBookReload: the agent's live list follows the file, keeps the last
// good list when the file turns bad, and refuses a file others can read.
func TestBookReload(t *testing.T) {
	dir := t.TempDir()
	bob := key(10).Public().(ed25519.PublicKey)
	b, err := trust.NewBook(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := b.Current(); len(l.Entries()) != 0 {
		t.Fatal("new book not empty")
	}
	if _, err := trust.Set(dir, bob, true, true, "", "test"); err != nil {
		t.Fatal(err)
	}
	if l, err := b.Current(); err != nil || len(l.Entries()) != 1 {
		t.Fatalf("after add: %v, %v", l.Entries(), err)
	}
	// Read-only to write-only: same size, maybe the same mtime tick; the
	// rename still makes it a new file.
	if _, err := trust.Set(dir, bob, true, false, "", "test"); err != nil {
		t.Fatal(err)
	}
	b.Current()
	before, err := os.Stat(filepath.Join(dir, trust.File))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Set(dir, bob, false, true, "", "test"); err != nil {
		t.Fatal(err)
	}
	// As on a file system with coarse timestamps: the same mtime.
	if err := os.Chtimes(filepath.Join(dir, trust.File), before.ModTime(), before.ModTime()); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.Current(); !l.Entries()[0].Write || l.Entries()[0].Read {
		t.Fatalf("role swap not seen: %+v", l.Entries())
	}
	if _, err := trust.Set(dir, bob, true, true, "", "test"); err != nil {
		t.Fatal(err)
	}
	b.Current()
	p := filepath.Join(dir, trust.File)
	time.Sleep(10 * time.Millisecond) // a new mtime
	if err := os.WriteFile(p, []byte("[{\"key\": \"zz\"}]"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := b.Current()
	if err == nil || !strings.Contains(err.Error(), "not 64 lowercase hex") {
		t.Errorf("bad edit: err = %v", err)
	}
	if e, ok := l.Lookup(bob); !ok || !e.Read {
		t.Errorf("bad edit dropped the last good list: %+v", l.Entries())
	}
	if err := os.WriteFile(p, []byte("[]"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Load(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable trust.json loaded: %v", err)
	}
}
