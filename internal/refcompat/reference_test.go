//go:build reference

// Interop tests against the real reference (Rust) mmogit binary, built by
// third_party/reference-mmogit/build.sh. Run with `make test-reference`, or
// MMOGIT_REFERENCE_BIN=/path/to/mmogit go test -tags reference ./internal/refcompat.

package refcompat

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	refBin string // the reference binary
	ourBin string // mmogit, built from this tree
)

func TestMain(m *testing.M) {
	refBin = os.Getenv("MMOGIT_REFERENCE_BIN")
	if refBin == "" {
		fmt.Fprintln(os.Stderr, "MMOGIT_REFERENCE_BIN is not set: run `make test-reference` (it builds the reference)")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "refcompat")
	if err != nil {
		panic(err)
	}
	ourBin = filepath.Join(dir, "mmogit")
	if out, err := exec.Command("go", "build", "-o", ourBin, "../../cmd/mmogit").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

func ref(t *testing.T, dir string, args ...string) string {
	return run(t, refBin, append([]string{"--config-dir", dir}, args...)...)
}

func ours(t *testing.T, dir string, args ...string) string {
	return run(t, ourBin, append([]string{"--config-dir", dir}, args...)...)
}

var refKey = regexp.MustCompile(`Public key: ([0-9a-f]{64})`)

// initBoth creates the same identity in a reference dir and an mmogit dir.
func initBoth(t *testing.T, phrase string) (refDir, ourDir, pub string) {
	t.Helper()
	refDir, ourDir = filepath.Join(t.TempDir(), "ref"), filepath.Join(t.TempDir(), "ours")
	m := refKey.FindStringSubmatch(ref(t, refDir, "init", "--seed-phrase", phrase, "--no-verify"))
	if m == nil {
		t.Fatal("reference init printed no public key")
	}
	var r struct {
		Pubkey string `json:"pubkey"`
	}
	if err := json.Unmarshal([]byte(ours(t, ourDir, "--json", "init", "--seed-phrase", phrase)), &r); err != nil {
		t.Fatal(err)
	}
	if m[1] != r.Pubkey {
		t.Fatalf("%q: the reference derives %s, mmogit %s", phrase, m[1], r.Pubkey)
	}
	return refDir, ourDir, r.Pubkey
}

func TestIdentity(t *testing.T) {
	for _, phrase := range []string{
		FixturePhrase,
		"legal winner thank year wave sausage worth useful legal winner thank yellow",
		"not a bip39 phrase but a sentence someone chose", // hashed ("YOLO mode") in both
	} {
		initBoth(t, phrase) // compares the keys
	}
}

// memoryTypes are the seven types both write.
var memoryTypes = []string{"observation", "learning", "relationship", "task", "experience", "reflection", "question"}

var (
	refValid   = regexp.MustCompile(`(?m)^\d+\. ✅`)
	refInvalid = regexp.MustCompile(`(?m)^\d+\. ⚠️`)
	refFound   = regexp.MustCompile(`Found (\d+) (?:memory|message)`)
)

// TestOursReadByReference: the reference's show lists every message mmogit
// posts, with a valid signature (encrypted ones too: the signature covers
// the age ciphertext, which the reference cannot read), and its recall
// finds every memory type mmogit remembers publicly.
func TestOursReadByReference(t *testing.T) {
	phrase := "legal winner thank year wave sausage worth useful legal winner thank yellow"
	refDir, ourDir, _ := initBoth(t, phrase)
	ours(t, ourDir, "post", "--public", "first from mmogit")
	ours(t, ourDir, "post", "--public", "second from mmogit")
	ours(t, ourDir, "post", "sealed from mmogit")
	for _, typ := range memoryTypes {
		ours(t, ourDir, "remember", "--public", "-t", typ, "--tags", "interop", typ+" from mmogit")
	}
	want := 3 + len(memoryTypes)
	// The reference reads <config-dir>/messages: give it mmogit's.
	if err := os.Rename(filepath.Join(ourDir, "messages"), filepath.Join(refDir, "messages")); err != nil {
		t.Fatal(err)
	}
	out := ref(t, refDir, "show")
	if n := len(refValid.FindAllString(out, -1)); n != want || refInvalid.MatchString(out) {
		t.Fatalf("reference show: %d valid of %d:\n%s", n, want, out)
	}
	for _, s := range []string{"first from mmogit", "second from mmogit"} {
		if !strings.Contains(out, s) {
			t.Fatalf("reference show lacks %q", s)
		}
	}
	for _, typ := range memoryTypes {
		out := ref(t, refDir, "recall", "-t", typ)
		m := refFound.FindStringSubmatch(out)
		if m == nil || m[1] != "1" || !strings.Contains(out, typ+" from mmogit") {
			t.Fatalf("reference recall -t %s:\n%s", typ, out)
		}
	}
}

type shown struct {
	Content      string `json:"content"`
	Author       string `json:"author"`
	Valid        bool   `json:"valid"`
	Error        string `json:"error"`
	Encrypted    bool   `json:"encrypted"`
	Readable     bool   `json:"readable"`
	RefEnvelope  bool   `json:"ref_envelope"`
	Unverifiable bool   `json:"unverifiable"`
}

// TestReferenceReadByUs: mmogit shows every message the reference writes,
// public or (by default) encrypted, as valid and readable for the same
// identity, recalls every memory type, and shows the encrypted ones to
// another identity as encrypted and unreadable, never INVALID.
func TestReferenceReadByUs(t *testing.T) {
	refDir, ourDir, pub := initBoth(t, FixturePhrase)
	// Public writes first: the reference's post_encrypted commits its
	// index as it stands, so an encrypted post after a public one drops the
	// earlier envelopes from the tip of its -encrypted branch (they stay in
	// its history, and its own show no longer lists them either).
	ref(t, refDir, "post", "--public", "public from the reference")
	for _, typ := range memoryTypes {
		ref(t, refDir, "remember", "--public", "-t", typ, typ+" public from the reference")
	}
	ref(t, refDir, "post", "encrypted from the reference")
	for _, typ := range memoryTypes {
		ref(t, refDir, "remember", "-t", typ, typ+" encrypted from the reference")
	}
	want := 2 + 2*len(memoryTypes)
	if err := exec.Command("cp", "-a", filepath.Join(refDir, "messages"), filepath.Join(ourDir, "messages")).Run(); err != nil {
		t.Fatal(err)
	}
	var got []shown
	if err := json.Unmarshal([]byte(ours(t, ourDir, "--json", "show")), &got); err != nil {
		t.Fatal(err)
	}
	enc := 0
	for _, s := range got {
		if !s.Valid || !s.Readable || s.Author != pub {
			t.Fatalf("for its author: %+v", s)
		}
		if s.RefEnvelope {
			enc++
			if !s.Encrypted || !strings.Contains(s.Content, "encrypted from the reference") {
				t.Fatalf("envelope shown as %+v", s)
			}
		}
	}
	if len(got) != want || enc != want/2 {
		t.Fatalf("mmogit show: %d messages (%d from envelopes), want %d (%d)", len(got), enc, want, want/2)
	}
	var rec []struct {
		Memory struct {
			Memory struct {
				Type string `json:"type"`
			} `json:"memory"`
		} `json:"memory"`
		RefEnvelope bool `json:"ref_envelope"`
	}
	if err := json.Unmarshal([]byte(ours(t, ourDir, "--json", "recall")), &rec); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, r := range rec {
		types[strings.ToLower(r.Memory.Memory.Type)]++
	}
	// The reference's remember writes four types; it stores relationship,
	// task and experience as observations ("Unknown memory type").
	wantTypes := map[string]int{"observation": 2 * 4, "learning": 2, "reflection": 2, "question": 2}
	if fmt.Sprint(types) != fmt.Sprint(wantTypes) {
		t.Fatalf("mmogit recall found %v, want %v (each public and encrypted)", types, wantTypes)
	}

	// Another identity holding the same repository.
	other := filepath.Join(t.TempDir(), "other")
	ours(t, other, "--json", "init", "--seed-phrase", "abandon ability able about above absent absorb abstract absurd abuse access accident")
	if err := exec.Command("cp", "-a", filepath.Join(refDir, "messages"), filepath.Join(other, "messages")).Run(); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal([]byte(ours(t, other, "--json", "show", "--all")), &got); err != nil {
		t.Fatal(err)
	}
	unreadable := 0
	for _, s := range got {
		switch {
		case s.RefEnvelope:
			unreadable++
			if !s.Encrypted || s.Readable || !s.Unverifiable || s.Error != "" {
				t.Fatalf("another identity sees an envelope as %+v", s)
			}
		case !s.Valid:
			t.Fatalf("INVALID for another identity: %+v", s)
		}
	}
	if len(got) != want || unreadable != want/2 {
		t.Fatalf("another identity: %d shown, %d unreadable; want %d, %d", len(got), unreadable, want, want/2)
	}
	if out := ours(t, other, "show", "--all"); strings.Contains(out, "INVALID") {
		t.Fatalf("another identity's show says INVALID:\n%s", out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, port int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			// A probe the reference answers with Hello and drops: fine.
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %d", port)
}

type p2pOut struct {
	Wire           string   `json:"wire"`
	Pubkey         string   `json:"pubkey"`
	FramesSent     []string `json:"frames_sent"`
	FramesReceived []string `json:"frames_received"`
}

// TestP2PReferenceListens: mmogit connects to a reference `p2p listen`
// and completes its session: Hello both ways, Ping/Pong, Bye.
func TestP2PReferenceListens(t *testing.T) {
	refDir, _, refPub := initBoth(t, "legal winner thank year wave sausage worth useful legal winner thank yellow")
	_, ourDir, _ := initBoth(t, FixturePhrase)
	port := freePort(t)
	cmd := exec.Command(refBin, "--config-dir", refDir, "p2p", "listen", "--port", strconv.Itoa(port))
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	waitListening(t, port)
	var r p2pOut
	out := ours(t, ourDir, "--json", "p2p", "connect", "--direct", "--wire", "reference", "127.0.0.1:"+strconv.Itoa(port))
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Wire != "reference" || r.Pubkey != refPub || strings.Join(r.FramesSent, ",") != "Hello,Ping,Bye" || strings.Join(r.FramesReceived, ",") != "Hello,Pong" {
		t.Fatalf("session: %+v", r)
	}
	// The reference logs the Bye it understood.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), "Peer disconnecting"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("reference did not see our Bye:\n%s", log.String())
		}
	}
}

// TestP2PReferenceConnects: a reference `p2p connect` to mmogit's
// `p2p listen` (wire auto-detected) completes: the reference exits 0 after
// printing its ping/pong success.
func TestP2PReferenceConnects(t *testing.T) {
	refDir, _, _ := initBoth(t, "legal winner thank year wave sausage worth useful legal winner thank yellow")
	_, ourDir, ourPub := initBoth(t, FixturePhrase)
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ln := exec.CommandContext(ctx, ourBin, "--config-dir", ourDir, "--json", "p2p", "listen", "--direct", "--once", "--port", strconv.Itoa(port))
	var lout strings.Builder
	ln.Stdout = &lout
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ln.Process.Kill(); ln.Wait() }()
	// Wait for the port without connecting (--once would serve the probe).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
			break // taken: mmogit listens
		} else {
			l.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("mmogit never listened")
		}
	}
	out := ref(t, refDir, "p2p", "connect", "127.0.0.1:"+strconv.Itoa(port))
	if !strings.Contains(out, "Connected to peer: "+ourPub[:8]) || !strings.Contains(out, "ping/pong successful") {
		t.Fatalf("reference connect:\n%s", out)
	}
	if err := ln.Wait(); err != nil {
		t.Fatalf("mmogit listen: %v", err)
	}
	var r p2pOut
	if err := json.Unmarshal([]byte(lout.String()), &r); err != nil {
		t.Fatalf("%v: %s", err, lout.String())
	}
	if r.Wire != "reference" || strings.Join(r.FramesReceived, ",") != "Hello,Ping,Bye" || strings.Join(r.FramesSent, ",") != "Hello,Pong" {
		t.Fatalf("session: %+v", r)
	}
}
