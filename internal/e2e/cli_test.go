package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmogit/mmogit/internal/testnet"
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

	// The first is public so that plain git can find and edit its text
	// below; the second is encrypted (the default).
	for _, args := range [][]string{{"post", "--public", "first memory"}, {"post", "second memory"}} {
		if _, stderr, err := mm(t, dir, "", args...); err != nil {
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
	// Human output names the author by its whole key (no alias here).
	if out, _, err = mm(t, dir, "", "recall", "-t", "learning"); err != nil || !strings.Contains(out, " "+id.Pubkey+" ") || !strings.Contains(out, "onion circuits need 4 relays") {
		t.Errorf("recall (human) lacks the author %s: %v %s", id.Pubkey, err, out)
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

// TestInitJSONNeedsNoVerify: under --json the new words are only in the
// result, so they cannot be confirmed first; init says so and saves
// nothing instead of asking for words the user never saw.
func TestInitJSONNeedsNoVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	out, stderr, err := mm(t, dir, "", "--json", "init")
	if err == nil || !strings.Contains(stderr, "--json needs --no-verify") || strings.Contains(out, `"mnemonic":`) {
		t.Fatalf("--json init without --no-verify: %v stdout=%q stderr=%s", err, out, stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("--json init without --no-verify created the config dir")
	}
	// Restoring needs no confirmation, so --json alone is fine.
	if _, stderr, err := mm(t, dir, "", "--json", "init", "--seed-phrase", abandon); err != nil {
		t.Fatal(err, stderr)
	}
	if help, _, _ := mm(t, dir, "", "init", "--help"); !strings.Contains(help, "--json without --seed-phrase requires --no-verify") {
		t.Errorf("init --help does not document --json:\n%s", help)
	}
}

// TestInitRefusesAnyExistingSeed: a seed file that Load rejects (mode
// 0640, corrupt) still exists; init must refuse before showing a new
// mnemonic, and leave the file alone.
func TestInitRefusesAnyExistingSeed(t *testing.T) {
	for name, mode := range map[string]os.FileMode{"group-readable": 0o640, "corrupt": 0o600} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "home")
			os.MkdirAll(dir, 0o700)
			seed := filepath.Join(dir, ".seed")
			body := abandon + "\n"
			if name == "corrupt" {
				body = ""
			}
			os.WriteFile(seed, []byte(body), mode)
			os.Chmod(seed, mode)
			for _, args := range [][]string{{"init"}, {"init", "--no-verify"}, {"--json", "init", "--no-verify"}} {
				out, stderr, err := mm(t, dir, "abandon\nabandon\nabandon\n", args...)
				if err == nil || !strings.Contains(stderr, "--force") || !strings.Contains(stderr, "already exists") {
					t.Fatalf("%v over a %s seed: %v %s", args, name, err, stderr)
				}
				if strings.Contains(out, "seed phrase") || strings.Contains(out, `"mnemonic":`) {
					t.Fatalf("%v showed a mnemonic it did not save:\n%s", args, out)
				}
			}
			if b, _ := os.ReadFile(seed); string(b) != body {
				t.Fatalf("seed changed to %q", b)
			}
			// --force replaces it.
			if _, stderr, err := mm(t, dir, "", "init", "--no-verify", "--force"); err != nil {
				t.Fatal(err, stderr)
			}
			if _, stderr, err := mm(t, dir, "", "address"); err != nil {
				t.Fatalf("address after --force: %v %s", err, stderr)
			}
		})
	}
}

// TestOfflineCLIReadsCreateNothing: show and recall in a config dir that
// does not exist say to run init and create nothing; with an identity but
// no repository yet they print an empty result and still create nothing.
func TestOfflineCLIReadsCreateNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	for _, args := range [][]string{{"show"}, {"--json", "show"}, {"recall"}, {"--json", "recall", "-t", "task"}} {
		out, stderr, err := mm(t, dir, "", args...)
		if err == nil || !strings.Contains(stderr, "mmogit init") || strings.Contains(out, "[") {
			t.Fatalf("%v in a missing dir: %v %q %s", args, err, out, stderr)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%v created %s", args, dir)
		}
	}
	if _, stderr, err := mm(t, dir, "", "init", "--seed-phrase", abandon); err != nil {
		t.Fatal(err, stderr)
	}
	if out, _, err := mm(t, dir, "", "show"); err != nil || !strings.Contains(out, "no messages yet") {
		t.Fatalf("show with no repository: %v %s", err, out)
	}
	if out, _, err := mm(t, dir, "", "--json", "recall"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("recall with no repository: %v %s", err, out)
	}
	if _, stderr, err := mm(t, dir, "", "recall", "-t", "dream"); err == nil || !strings.Contains(stderr, "observation") {
		t.Errorf("recall -t dream with no repository: %v %s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "messages")); err == nil {
		t.Fatal("show/recall created the repository")
	}
}

// TestOfflineCLIStructuredMemories: without --confidence no confidence is
// stored (except an observation's reference default), so a recall with a
// minimum keeps such memories; a Learning carries context and
// applicable_to as the reference requires.
func TestOfflineCLIStructuredMemories(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, stderr, err := mm(t, dir, "", "init", "--seed-phrase", abandon); err != nil {
		t.Fatal(err, stderr)
	}
	for _, args := range [][]string{
		{"remember", "-t", "learning", "unrated lesson"},
		{"remember", "-t", "task", "doubtful task", "--confidence", "0.2"},
		{"remember", "-t", "task", "zero task", "--confidence", "0"},
		{"remember", "-t", "observation", "plain observation"},
	} {
		if _, stderr, err := mm(t, dir, "", args...); err != nil {
			t.Fatal(args, err, stderr)
		}
	}
	out, _, err := mm(t, dir, "", "--json", "recall", "--confidence", "0.5")
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Memory struct {
			Memory map[string]any `json:"memory"`
		} `json:"memory"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err, out)
	}
	var texts []string
	for _, r := range got {
		m := r.Memory.Memory
		text, _ := m["lesson"].(string)
		if m["type"] == "Observation" {
			text, _ = m["insight"].(string)
		}
		texts = append(texts, text)
		switch m["type"] {
		case "Learning":
			if _, ok := m["confidence"]; ok {
				t.Errorf("learning without --confidence has one: %v", m)
			}
			if c, ok := m["context"]; !ok || c != "" {
				t.Errorf("learning context = %v", m)
			}
			if a, ok := m["applicable_to"].([]any); !ok || len(a) != 0 {
				t.Errorf("learning applicable_to = %v", m)
			}
		case "Observation":
			if m["confidence"] != 0.5 {
				t.Errorf("observation without --confidence: %v", m)
			}
		}
	}
	if strings.Join(texts, "|") != "unrated lesson|plain observation" {
		t.Fatalf("recall --confidence 0.5 = %v\n%s", texts, out)
	}
	out, _, _ = mm(t, dir, "", "--json", "recall", "-t", "task")
	if !strings.Contains(out, `"confidence": 0.2`) || !strings.Contains(out, `"confidence": 0`) {
		t.Errorf("explicit confidences not stored:\n%s", out)
	}
}

// TestOfflineCLIShowEscapes: a peer's message cannot forge a second line
// of human output or send escape sequences to the terminal.
func TestOfflineCLIShowEscapes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if _, stderr, err := mm(t, dir, "", "init", "--seed-phrase", abandon); err != nil {
		t.Fatal(err, stderr)
	}
	forged := "hi\n[valid] 2025-01-01T00:00:00Z d75a9801: forged line\x1b]0;owned\x07"
	if _, stderr, err := mm(t, dir, "", "post", forged); err != nil {
		t.Fatal(err, stderr)
	}
	out, _, err := mm(t, dir, "", "show")
	if err != nil || strings.Count(out, "\n") != 1 || strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `hi\n[valid]`) {
		t.Fatalf("show: %v\n%s", err, out)
	}
	var id struct{ Pubkey string }
	o, _, _ := mm(t, dir, "", "--json", "address")
	json.Unmarshal([]byte(o), &id)
	if id.Pubkey == "" || !strings.Contains(out, id.Pubkey) {
		t.Errorf("show does not print the whole author key %q:\n%s", id.Pubkey, out)
	}
	js, _, _ := mm(t, dir, "", "--json", "show")
	var shown []struct{ Content string }
	if json.Unmarshal([]byte(js), &shown); len(shown) != 1 || shown[0].Content != forged {
		t.Errorf("--json show altered the content: %s", js)
	}
}

// TestOfflineCLITestnetStatus: status of a network whose processes are
// gone reports them as not running and fails; a missing network says how
// to start one. (TestTestnetStatusCLI checks a running one.)
func TestOfflineCLITestnetStatus(t *testing.T) {
	root := t.TempDir()
	if _, stderr, err := mm(t, root, "", "testnet", "status", "--dir", filepath.Join(root, "none")); err == nil || !strings.Contains(stderr, "testnet up") {
		t.Fatalf("status without a network: %v %s", err, stderr)
	}
	dir := filepath.Join(root, "net")
	os.MkdirAll(dir, 0o700)
	// A PID that is surely not a tor of this directory: a finished child.
	c := exec.Command("true")
	c.Run()
	info := map[string]any{"dir": dir, "socks": "127.0.0.1:1", "control": "127.0.0.1:2", "pids": []int{c.Process.Pid, os.Getpid()}}
	b, _ := json.Marshal(info)
	os.WriteFile(filepath.Join(dir, "testnet.json"), b, 0o600)
	out, stderr, err := mm(t, root, "", "--json", "testnet", "status", "--dir", dir)
	if err == nil || !strings.Contains(stderr, "not running") {
		t.Fatalf("status of a stopped network: %v %s", err, stderr)
	}
	var st struct {
		Running   bool
		Alive     int
		Socks     string
		Control   string
		Processes []struct{ Running bool }
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err, out)
	}
	if st.Running || st.Alive != 0 || len(st.Processes) != 2 || st.Socks != "127.0.0.1:1" || st.Control != "127.0.0.1:2" {
		t.Fatalf("status = %+v", st)
	}
}

// TestTestnetStatusCLI: status of a running network finds all its tor
// processes and the client at 100 %.
func TestTestnetStatusCLI(t *testing.T) {
	n := testnet.Shared(t)
	out, stderr, err := mm(t, t.TempDir(), "", "--json", "testnet", "status", "--dir", n.Info().Dir)
	if err != nil {
		t.Fatal(err, stderr)
	}
	var st struct {
		Running   bool
		Alive     int
		Socks     string
		Processes []struct{ Node string }
		Progress  *int `json:"client_bootstrap_progress"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err, out)
	}
	if !st.Running || st.Alive != len(n.Info().PIDs) || st.Socks != n.SocksAddr() || st.Progress == nil || *st.Progress != 100 {
		t.Fatalf("status = %s", out)
	}
}
