package statuspage

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"testing"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
)

// TestDirMemories: a real identity and repository; the page lists this
// identity's messages newest first with the right badges, hides a
// stranger's, and searches readable text only.
func TestDirMemories(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	phrase, err := identity.NewMnemonic()
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.Save(dir, phrase, false); err != nil {
		t.Fatal(err)
	}
	id, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := memory.Open(filepath.Join(dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	toMe, err := seal.Seal("secret for me", []ed25519.PublicKey{id.Public})
	if err != nil {
		t.Fatal(err)
	}
	toOther, err := seal.Seal("secret for someone else", []ed25519.PublicKey{otherPub})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"plain hello", toMe, toOther} {
		if _, err := st.Post(ctx, id.Private, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Post(ctx, otherPriv, "a stranger's post"); err != nil {
		t.Fatal(err)
	}

	d := &Dir{Path: dir}
	got, err := d.Memories(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		text                       string
		valid, encrypted, readable bool
	}
	want := []row{
		{seal.MarkNotForYou, true, true, false},
		{"secret for me", true, true, true},
		{"plain hello", true, false, true},
	}
	if len(got.Items) != len(want) || got.Held != 3 || got.Total != 3 {
		t.Fatalf("memories %+v: want %d items (the stranger's hidden)", got, len(want))
	}
	for i, w := range want {
		m := got.Items[i]
		if (row{m.Text, m.Valid, m.Encrypted, m.Readable}) != w || m.Type != "post" {
			t.Errorf("item %d: %+v, want %+v (newest first)", i, m, w)
		}
	}
	tests := []struct {
		query string
		total int
	}{{"SECRET", 1}, {"someone else", 0}, {"post", 3}, {"nothing like it", 0}}
	for _, tc := range tests {
		got, err := d.Memories(ctx, tc.query, 10)
		if err != nil || got.Total != tc.total {
			t.Errorf("search %q: %d found (%v), want %d", tc.query, got.Total, err, tc.total)
		}
	}
	if got, _ := d.Memories(ctx, "", 1); len(got.Items) != 1 || got.Total != 3 {
		t.Errorf("limit 1: %d items of %d", len(got.Items), got.Total)
	}
}
