package seal

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestIndex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	ix, err := LoadIndex(dir)
	if err != nil || len(ix) != 0 {
		t.Fatalf("missing index: %v %v", ix, err)
	}
	id1, id2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	k1, k2, k3 := hex.EncodeToString(pubOf(keyN(1))), hex.EncodeToString(pubOf(keyN(2))), hex.EncodeToString(pubOf(keyN(3)))
	if err := AddToIndex(dir, id1, []string{k2, k1}); err != nil {
		t.Fatal(err)
	}
	if err := AddToIndex(dir, id1, []string{strings.ToUpper(k2), k3}); err != nil {
		t.Fatal(err)
	}
	if err := AddToIndex(dir, id2, []string{k3}); err != nil {
		t.Fatal(err)
	}
	if err := AddToIndex(dir, id2, nil); err != nil {
		t.Fatal(err)
	}
	ix, err = LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := Index{id1: sorted(k1, k2, k3), id2: {k3}}
	if !reflect.DeepEqual(ix, want) {
		t.Errorf("index %v, want %v", ix, want)
	}
	if got := ix.Recipients(id1); !reflect.DeepEqual(got, sorted(k1, k2, k3)) {
		t.Errorf("Recipients(id1) = %v", got)
	}
	if got := ix.Recipients(strings.Repeat("ef", 32)); got != nil {
		t.Errorf("Recipients(unknown) = %v", got)
	}
	fi, err := os.Stat(filepath.Join(dir, IndexFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("index file mode %v, %v; want 0600", fi.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, IndexFile+".tmp*"))
	if len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
	for _, bad := range []struct{ id, key string }{{"nope", k1}, {id1, k1[:63]}, {id1, "zz" + k1[2:]}} {
		if err := AddToIndex(dir, bad.id, []string{bad.key}); err == nil {
			t.Errorf("AddToIndex(%q, %q) accepted", bad.id, bad.key)
		}
	}
}

// TestIndexConcurrent: writers racing on one file lose nothing.
func TestIndexConcurrent(t *testing.T) {
	dir := t.TempDir()
	k := hex.EncodeToString(pubOf(keyN(9)))
	var wg sync.WaitGroup
	const n = 20
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := hex.EncodeToString(append(make([]byte, 31), byte(i)))
			if err := AddToIndex(dir, id, []string{k}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	ix, err := LoadIndex(dir)
	if err != nil || len(ix) != n {
		t.Fatalf("%d entries after %d concurrent adds (%v)", len(ix), n, err)
	}
}

func sorted(s ...string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
