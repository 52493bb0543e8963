package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mm runs the mmogit binary with a config dir and optional stdin.
func mm(t *testing.T, dir, stdin string, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--config-dir", dir}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

const abandon = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// TestOfflineCLI walks the foundation commands as a new user would.
func TestOfflineCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")

	// Restore from a known mnemonic: the key must match the BIP39 seed.
	out, _, err := mm(t, dir, "", "--json", "init", "--seed-phrase", abandon)
	if err != nil {
		t.Fatal(err)
	}
	var id struct{ Pubkey, OnionAddress, PeerID string }
	json.Unmarshal([]byte(out), &id)
	out, _, err = mm(t, dir, "", "--json", "address")
	if err != nil {
		t.Fatal(err)
	}
	var addr map[string]string
	if err := json.Unmarshal([]byte(out), &addr); err != nil {
		t.Fatal(err)
	}
	if addr["pubkey"] != id.Pubkey || !strings.HasSuffix(addr["onion_address"], ".onion") || !strings.HasPrefix(addr["peer_id"], "12D3KooW") {
		t.Fatalf("address = %v", addr)
	}
	if o, _, _ := mm(t, dir, "", "address", "--onion"); strings.TrimSpace(o) != addr["onion_address"] {
		t.Errorf("address --onion = %q", o)
	}
	fi, err := os.Stat(filepath.Join(dir, ".seed"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file: %v %v", fi.Mode(), err)
	}
	if _, stderr, err := mm(t, dir, "", "init", "--no-verify"); err == nil || !strings.Contains(stderr, "--force") {
		t.Errorf("init over an identity: %v %s", err, stderr)
	}

	for _, m := range []string{"first memory", "second memory"} {
		if _, stderr, err := mm(t, dir, "", "post", m); err != nil {
			t.Fatalf("post: %v %s", err, stderr)
		}
	}
	if _, stderr, err := mm(t, dir, "", "remember", "-t", "learning", "onion circuits need 4 relays", "--tags", "tor,net", "--confidence", "0.8"); err != nil {
		t.Fatalf("remember: %v %s", err, stderr)
	}
	if _, stderr, err := mm(t, dir, "", "remember", "-t", "dream", "x"); err == nil || !strings.Contains(stderr, "observation") {
		t.Errorf("unknown type: %v %s", err, stderr)
	}
	out, _, err = mm(t, dir, "", "--json", "recall", "-t", "learning", "--tag", "tor")
	if err != nil || !strings.Contains(out, "onion circuits need 4 relays") {
		t.Fatalf("recall: %v %s", err, out)
	}
	if out, _, _ = mm(t, dir, "", "--json", "recall", "--tag", "nope"); strings.TrimSpace(out) != "[]" {
		t.Errorf("recall with no match = %s", out)
	}

	// Edit a message behind mmogit's back with plain git: it must show as
	// INVALID, not disappear.
	repo := filepath.Join(dir, "messages")
	branch := "users/" + id.Pubkey[:8]
	gitc := func(args ...string) string {
		c := exec.Command("git", append([]string{"-C", repo}, args...)...)
		c.Env = append(os.Environ(), "GIT_AUTHOR_NAME=x", "GIT_AUTHOR_EMAIL=x@x", "GIT_COMMITTER_NAME=x", "GIT_COMMITTER_EMAIL=x@x")
		b, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, b)
		}
		return string(b)
	}
	gitc("checkout", "-q", branch)
	files := strings.Fields(gitc("ls-files"))
	var victim string
	for _, f := range files {
		b, _ := os.ReadFile(filepath.Join(repo, f))
		if strings.Contains(string(b), "first memory") {
			victim = f
		}
	}
	if victim == "" {
		t.Fatalf("no file holds the first memory: %v", files)
	}
	b, _ := os.ReadFile(filepath.Join(repo, victim))
	os.WriteFile(filepath.Join(repo, victim), []byte(strings.Replace(string(b), "first memory", "forged memory", 1)), 0o600)
	gitc("commit", "-qam", "tamper")
	out, _, err = mm(t, dir, "", "--json", "show")
	if err != nil {
		t.Fatal(err)
	}
	var shown []struct {
		Content string
		Valid   bool
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown) != 3 {
		t.Fatalf("show lists %d messages, want 3: %s", len(shown), out)
	}
	for _, m := range shown {
		if m.Valid == (m.Content == "forged memory") {
			t.Errorf("message %q valid=%v", m.Content, m.Valid)
		}
	}
	human, _, _ := mm(t, dir, "", "show")
	if !strings.Contains(human, "INVALID") {
		t.Errorf("human show does not flag the forgery:\n%s", human)
	}

	// A seed readable by others is refused, with the fix in the message.
	os.Chmod(filepath.Join(dir, ".seed"), 0o644)
	if _, stderr, err := mm(t, dir, "", "address"); err == nil || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("world-readable seed accepted: %v %s", err, stderr)
	}
}

// TestInitVerifiesWords: a new mnemonic is shown once and three of its
// words must be confirmed; a wrong answer saves nothing.
func TestInitVerifiesWords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	_, stderr, err := mm(t, dir, "wrong\nwrong\nwrong\n", "init")
	if err == nil || !strings.Contains(stderr, "does not match") {
		t.Fatalf("wrong words accepted: %v %s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".seed")); err == nil {
		t.Fatal("seed saved despite failed confirmation")
	}
	// Answer correctly: read the words from the first run's output by
	// running with --json (mnemonic in the result) and --no-verify.
	out, _, err := mm(t, dir, "", "--json", "init", "--no-verify")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Mnemonic string `json:"mnemonic"`
		BIP39    bool   `json:"bip39"`
	}
	json.Unmarshal([]byte(out), &r)
	if len(strings.Fields(r.Mnemonic)) != 24 || !r.BIP39 {
		t.Fatalf("init result %s", out)
	}
}

// TestAgentChecksPermissions: the agent refuses to start with a config dir
// others can read, or a tor.json others can write (it names the binary
// the agent runs), and says how to fix it.
func TestAgentChecksPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, stderr, err := mm(t, dir, "", "init", "--no-verify"); err != nil {
		t.Fatal(err, stderr)
	}
	mm(t, dir, "", "show") // writes nothing; tor.json appears on first agent use
	os.Chmod(dir, 0o755)
	if _, stderr, err := mm(t, dir, "", "agent", "run"); err == nil || !strings.Contains(stderr, "chmod 700") {
		t.Errorf("world-readable config dir: %v %s", err, stderr)
	}
	os.Chmod(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "tor.json"), []byte(`{"transport":"direct"}`), 0o666)
	os.Chmod(filepath.Join(dir, "tor.json"), 0o666)
	if _, stderr, err := mm(t, dir, "", "agent", "run"); err == nil || !strings.Contains(stderr, "chmod 600") {
		t.Errorf("world-writable tor.json: %v %s", err, stderr)
	}
}
