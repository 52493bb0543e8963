package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
)

// TestMain lets the test binary stand in for `mmogit agent run`:
// startAgent runs os.Executable, which in a test is this binary.
func TestMain(m *testing.M) {
	if msg := os.Getenv("MMOGIT_TEST_FAKE_AGENT"); msg != "" {
		fmt.Println(msg)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

// TestAgentLogSurvivesRestart: the log of an agent that crashed is still in
// agent.log after the next start, and the error of the next start shows
// only that start's lines.
func TestAgentLogSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home")
	if err := identity.Save(dir, abandonPhrase, false); err != nil {
		t.Fatal(err)
	}
	start := func(msg string) error {
		t.Setenv("MMOGIT_TEST_FAKE_AGENT", msg)
		var out, errb bytes.Buffer
		*g = globals{configDir: dir, json: true, stdout: &out, stderr: &errb, stdin: strings.NewReader("")}
		defer func() { *g = globals{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin} }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := startAgent(ctx, startArgs{timeout: 20 * time.Second})
		return err
	}
	if err := start("first agent: fatal error: crash evidence"); err == nil || !strings.Contains(err.Error(), "crash evidence") {
		t.Fatalf("first start: %v", err)
	}
	err := start("second agent: also failed")
	if err == nil || !strings.Contains(err.Error(), "also failed") {
		t.Fatalf("second start: %v", err)
	}
	if strings.Contains(err.Error(), "crash evidence") {
		t.Errorf("the second start's error shows the first agent's lines:\n%v", err)
	}
	b, rerr := os.ReadFile(filepath.Join(dir, agentLog))
	if rerr != nil {
		t.Fatal(rerr)
	}
	log := string(b)
	if !strings.Contains(log, "crash evidence") || !strings.Contains(log, "also failed") || strings.Count(log, "=== mmogit agent starting") != 2 {
		t.Errorf("agent.log does not keep both runs:\n%s", log)
	}
	if i, j := strings.Index(log, "crash evidence"), strings.Index(log, "also failed"); i > j {
		t.Errorf("runs out of order:\n%s", log)
	}
}

// TestAgentLogRotation: a log at the cap moves to agent.log.1 (replacing
// the older one), one below it is appended to, and the mode is 0600.
func TestAgentLogRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, agentLog)
	const limit = 100
	write := func(s string) {
		t.Helper()
		f, start, err := openAgentLog(p, limit)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got := tail(p, start, 100); !strings.Contains(got, strings.TrimSpace(s)) || strings.Count(got, "=== mmogit agent starting") != 1 {
			t.Errorf("tail from this start = %q", got)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(b)
	}

	if err := os.WriteFile(p, []byte("old run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("run A\n")
	if got := read(agentLog); !strings.HasPrefix(got, "old run\n") || !strings.HasSuffix(got, "run A\n") {
		t.Errorf("below the cap the log is not appended to:\n%s", got)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("agent.log mode %04o, want 0600", fi.Mode().Perm())
		}
	}
	if read(agentLog+".1") != "" {
		t.Error("rotated below the cap")
	}

	write(strings.Repeat("x", limit) + "\n") // now over the cap
	full := read(agentLog)
	write("run C\n")
	if got := read(agentLog + ".1"); got != full {
		t.Errorf("agent.log.1 = %q, want the full log %q", got, full)
	}
	if got := read(agentLog); strings.Contains(got, "old run") || !strings.HasSuffix(got, "run C\n") {
		t.Errorf("after rotation agent.log = %q", got)
	}

	write(strings.Repeat("y", limit) + "\n")
	second := read(agentLog)
	write("run E\n")
	if got := read(agentLog + ".1"); got != second {
		t.Errorf("second rotation: agent.log.1 = %q, want %q (only one old file is kept)", got, second)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d files in the dir, want agent.log and agent.log.1", len(entries))
	}
}
