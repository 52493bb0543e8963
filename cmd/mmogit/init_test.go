package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const (
	abandonPhrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	abandonPubkey = "c5785e1865b708938aff8161d573006496663b1aa10834e396dc566869a2c66a"
)

// runCLI runs one mmogit command in process with stdin as given.
func runCLI(t *testing.T, dir string, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	*g = globals{stdout: &out, stderr: &errb, stdin: stdin}
	t.Cleanup(func() { *g = globals{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin} })
	root := newRootCmd()
	root.SetArgs(append([]string{"--config-dir", dir}, args...))
	err = root.Execute()
	return out.String(), errb.String(), err
}

func writePhraseFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "phrase")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInitConfigDirMode: init leaves a config dir the agent accepts (0700):
// a new one is created so, an existing 0755 one is tightened with a note on
// stderr before anything else is printed.
func TestInitConfigDirMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix mode bits")
	}
	phrase := writePhraseFile(t, abandonPhrase+"\n")

	fresh := filepath.Join(t.TempDir(), "a", "home")
	if _, stderr, err := runCLI(t, fresh, nil, "init", "--seed-phrase-file", phrase); err != nil {
		t.Fatal(err, stderr)
	}
	if m := mode(t, fresh); m != 0o700 {
		t.Errorf("new config dir has mode %04o, want 0700", m)
	}

	for _, m := range []os.FileMode{0o755, 0o750, 0o711} {
		dir := filepath.Join(t.TempDir(), "home")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, m); err != nil { // not subject to umask
			t.Fatal(err)
		}
		out, stderr, err := runCLI(t, dir, nil, "init", "--seed-phrase-file", phrase)
		if err != nil {
			t.Fatal(err, stderr)
		}
		if got := mode(t, dir); got != 0o700 {
			t.Errorf("config dir %04o: after init it has mode %04o, want 0700", m, got)
		}
		if !strings.Contains(stderr, "changed it to 0700") || !strings.Contains(stderr, fmt.Sprintf("mode %04o", m)) {
			t.Errorf("config dir %04o: stderr does not say it was changed: %q", m, stderr)
		}
		if !strings.Contains(out, "Identity created") {
			t.Errorf("config dir %04o: stdout %q", m, out)
		}
		// The agent's own check now passes.
		if err := checkDirMode(dir); err != nil {
			t.Errorf("config dir %04o: %v", m, err)
		}
	}

	// Already 0700: nothing to say.
	dir := filepath.Join(t.TempDir(), "home")
	os.Mkdir(dir, 0o700)
	if _, stderr, err := runCLI(t, dir, nil, "init", "--seed-phrase-file", phrase); err != nil || stderr != "" {
		t.Errorf("0700 config dir: %v, stderr %q", err, stderr)
	}
}

// checkDirMode is the agent's rule (internal/agent checkDirPerms): no
// access at all for group and others.
func checkDirMode(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return errors.New("config dir still open to others: " + fi.Mode().String())
	}
	return nil
}

func pubkeyOf(t *testing.T, dir string) string {
	t.Helper()
	out, stderr, err := runCLI(t, dir, nil, "--json", "address")
	if err != nil {
		t.Fatal(err, stderr)
	}
	i := strings.Index(out, `"pubkey": "`)
	if i < 0 {
		t.Fatalf("no pubkey in %s", out)
	}
	return out[i+len(`"pubkey": "`):][:64]
}

// TestInitSeedPhraseFile: the phrase can come from a file or stdin, so it
// never has to be on the command line; only --seed-phrase warns.
func TestInitSeedPhraseFile(t *testing.T) {
	ok := []struct {
		name  string
		args  []string
		stdin string
	}{
		{"file", []string{"--seed-phrase-file", writePhraseFile(t, abandonPhrase+"\n")}, ""},
		{"file without newline", []string{"--seed-phrase-file", writePhraseFile(t, abandonPhrase)}, ""},
		{"file with CRLF", []string{"--seed-phrase-file", writePhraseFile(t, abandonPhrase+"\r\n")}, ""},
		{"stdin", []string{"--seed-phrase-file", "-"}, abandonPhrase + "\n"},
		{"command line", []string{"--seed-phrase", abandonPhrase}, ""},
	}
	for _, tc := range ok {
		dir := filepath.Join(t.TempDir(), "home")
		_, stderr, err := runCLI(t, dir, strings.NewReader(tc.stdin), append([]string{"init"}, tc.args...)...)
		if err != nil {
			t.Fatalf("%s: %v %s", tc.name, err, stderr)
		}
		if got := pubkeyOf(t, dir); got != abandonPubkey {
			t.Errorf("%s: pubkey %s, want %s", tc.name, got, abandonPubkey)
		}
		warned := strings.Contains(stderr, "WARNING: --seed-phrase")
		if want := tc.name == "command line"; warned != want {
			t.Errorf("%s: warning about the command line = %v, want %v (stderr %q)", tc.name, warned, want, stderr)
		}
	}

	bad := []struct {
		name, content, want string
	}{
		{"empty", "", "no seed phrase"},
		{"blank line", "\n", "no seed phrase"},
		{"two lines", abandonPhrase + "\n\n", "more than one line"},
		{"too big", strings.Repeat("a", maxPhraseFile+1), "more than"},
	}
	for _, tc := range bad {
		for _, viaStdin := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), "home")
			arg, stdin := writePhraseFile(t, tc.content), ""
			if viaStdin {
				arg, stdin = "-", tc.content
			}
			_, stderr, err := runCLI(t, dir, strings.NewReader(stdin), "init", "--seed-phrase-file", arg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s (stdin %v): %v %s, want an error with %q", tc.name, viaStdin, err, stderr, tc.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s (stdin %v): config dir created although nothing was saved", tc.name, viaStdin)
			}
		}
	}

	dir := filepath.Join(t.TempDir(), "home")
	if _, _, err := runCLI(t, dir, nil, "init", "--seed-phrase-file", filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing phrase file was accepted")
	}
	_, _, err := runCLI(t, dir, nil, "init", "--seed-phrase", abandonPhrase, "--seed-phrase-file", "-")
	var ue *usageError
	if !errors.As(err, &ue) {
		t.Errorf("--seed-phrase with --seed-phrase-file: %v, want a usage error", err)
	}
}

// TestInitRestorePrompt: --restore reads the phrase from the terminal
// without echo, and refuses a stdin that is not a terminal.
func TestInitRestorePrompt(t *testing.T) {
	tty, err := os.Open(os.DevNull) // stands in for the terminal
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()

	dir := filepath.Join(t.TempDir(), "home")
	_, stderr, err := runCLI(t, dir, tty, "init", "--restore")
	if err == nil || !strings.Contains(err.Error(), "not one") {
		t.Fatalf("--restore without a terminal: %v %s", err, stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("--restore without a terminal created the config dir")
	}

	origIsTerminal, origRead := stdinIsTerminal, readPassword
	defer func() { stdinIsTerminal, readPassword = origIsTerminal, origRead }()
	asked := 0
	stdinIsTerminal = func(fd int) bool { return fd == int(tty.Fd()) }
	readPassword = func(fd int) ([]byte, error) {
		asked++
		return []byte(abandonPhrase), nil
	}
	_, stderr, err = runCLI(t, dir, tty, "init", "--restore")
	if err != nil {
		t.Fatal(err, stderr)
	}
	if asked != 1 || !strings.Contains(stderr, "Seed phrase") || strings.Contains(stderr, "abandon") {
		t.Errorf("asked %d times; stderr %q", asked, stderr)
	}
	if got := pubkeyOf(t, dir); got != abandonPubkey {
		t.Errorf("pubkey %s, want %s", got, abandonPubkey)
	}

	readPassword = func(int) ([]byte, error) { return nil, nil }
	dir = filepath.Join(t.TempDir(), "home")
	if _, _, err := runCLI(t, dir, tty, "init", "--restore"); err == nil || !strings.Contains(err.Error(), "no seed phrase") {
		t.Errorf("empty answer: %v", err)
	}
}

// TestInitPhraseFileReadableByOthers: a phrase file others can read still
// works, with a warning; a private one gets none.
func TestInitPhraseFileReadableByOthers(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix mode bits")
	}
	for _, m := range []os.FileMode{0o600, 0o644} {
		p := writePhraseFile(t, abandonPhrase+"\n")
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
		_, stderr, err := runCLI(t, filepath.Join(t.TempDir(), "home"), nil, "init", "--seed-phrase-file", p)
		if err != nil {
			t.Fatal(err, stderr)
		}
		if warned := strings.Contains(stderr, "other users can read your seed phrase"); warned != (m == 0o644) {
			t.Errorf("phrase file %04o: warned %v; stderr %q", m, warned, stderr)
		}
	}
}
