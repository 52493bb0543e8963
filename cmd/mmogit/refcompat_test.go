package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/refwire"
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

// TestP2PReferenceMemories: with --wire reference --request, what a
// reference-wire peer sends is stored only if validly signed, and only
// messages by this identity or by trusted peers: its Hello proves nothing.
func TestP2PReferenceMemories(t *testing.T) {
	dir := t.TempDir()
	if _, errs, err := runCLI(t, dir, nil, "init", "--seed-phrase", abandonPhrase); err != nil {
		t.Fatal(err, errs)
	}
	self, err := identity.FromPhrase(abandonPhrase)
	if err != nil {
		t.Fatal(err)
	}
	stranger := ed25519.NewKeyFromSeed(make([]byte, 32))
	now := time.Now()
	mine := memory.Sign(self.Private, "mine, from another device", now)
	forged := memory.Sign(self.Private, "pay alice", now)
	forged.Content = "pay mallory"
	theirs := memory.Sign(stranger, "a stranger's", now)
	// A peer we let read but not write, and one we let write: the Hello
	// proves nothing, so each message is judged by its author's roles.
	reader := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	writer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32))
	for _, g := range []struct {
		key  ed25519.PrivateKey
		role string
	}{{reader, "--read"}, {writer, "--write"}} {
		pub := hex.EncodeToString(g.key.Public().(ed25519.PublicKey))
		if _, errs, err := runCLI(t, dir, nil, "trust", "add", pub, g.role); err != nil {
			t.Fatal(err, errs)
		}
	}
	readers := memory.Sign(reader, "from a read-only peer", now)
	writers := memory.Sign(writer, "from a writer", now)
	body, _ := json.Marshal([]memory.Message{mine, forged, theirs, readers, writers})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		_, err = refwire.Serve(context.Background(), c, nil, refwire.Options{Pubkey: hex.EncodeToString(stranger.Public().(ed25519.PublicKey)),
			Share: func(string) ([]byte, error) { return body, nil }})
		served <- err
	}()
	out, errs, err := runCLI(t, dir, nil, "--json", "p2p", "connect", "--direct", "--wire", "reference", "--request", "all", ln.Addr().String())
	if err != nil {
		t.Fatal(err, errs)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	var r p2pResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Received != 2 || r.Rejected != 1 || r.Refused != 2 || strings.Join(r.FramesSent, ",") != "Hello,Ping,MemoryRequest,Bye" {
		t.Fatalf("result %+v, want 2 stored, 1 rejected, 2 refused", r)
	}
	st, err := memory.Open(filepath.Join(dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	es, err := st.All(context.Background())
	got := map[string]bool{}
	for _, e := range es {
		got[e.Message.Content] = true
	}
	if err != nil || len(es) != 2 || !got[mine.Content] || !got[writers.Content] {
		t.Fatalf("stored %+v, %v; want only our own message and the writer's", es, err)
	}
}
