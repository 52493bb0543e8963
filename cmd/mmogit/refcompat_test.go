package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// refFixture is a repository the original Rust mmogit wrote (see
// internal/refcompat): public and encrypted posts and memories by the
// identity of this phrase.
const (
	refFixture       = "../../internal/refcompat/testdata/reference-repo.bundle"
	refFixturePhrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art"
)

func cloneRefFixture(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("git", "clone", "-q", "--mirror", refFixture, filepath.Join(dir, "messages")).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
}

// TestShowReferenceEnvelopes: `show` lists the reference's encrypted posts
// as encrypted, readable and valid for their author, and as unreadable and
// unverifiable, never INVALID, for another identity; each message once,
// though the reference copies plain files onto its -encrypted branch.
func TestShowReferenceEnvelopes(t *testing.T) {
	for _, tc := range []struct {
		name, phrase      string
		readable, envOpen int // messages readable; envelopes opened
	}{
		{"author", refFixturePhrase, 4, 2},
		{"other", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", 2, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, errs, err := runCLI(t, dir, nil, "init", "--seed-phrase", tc.phrase); err != nil {
				t.Fatal(err, errs)
			}
			cloneRefFixture(t, dir)
			out, errs, err := runCLI(t, dir, nil, "--json", "show", "--all")
			if err != nil {
				t.Fatal(err, errs)
			}
			var got []messageOut
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			readable, opened := 0, 0
			for _, o := range got {
				if !o.Valid && !o.Unverifiable {
					t.Fatalf("INVALID: %+v", o)
				}
				if o.Readable {
					readable++
				}
				if o.RefEnvelope && o.Readable {
					opened++
					if !o.Encrypted || !o.Valid || !strings.HasPrefix(o.Content, "reference encrypted") && !strings.Contains(o.Content, "reference encrypted learning") {
						t.Fatalf("opened envelope: %+v", o)
					}
				}
				if o.Unverifiable && (o.Readable || o.Error != "" || !o.Encrypted) {
					t.Fatalf("unopened envelope: %+v", o)
				}
			}
			if len(got) != 4 || readable != tc.readable || opened != tc.envOpen {
				t.Fatalf("%d shown, %d readable, %d envelopes opened; want 4, %d, %d:\n%s", len(got), readable, opened, tc.readable, tc.envOpen, out)
			}
			human, _, err := runCLI(t, dir, nil, "show", "--all")
			if err != nil || strings.Contains(human, "INVALID") {
				t.Fatalf("show: %v\n%s", err, human)
			}
		})
	}
}
