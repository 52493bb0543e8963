package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryStandsAlone fails when a tracked file points outside the
// repository at the design notes it was built from: what users and
// contributors need from them is in docs/ (private-network.md,
// spec-notes.md).
func TestRepositoryStandsAlone(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not in PATH")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(top))
	list, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	// Built at run time so that this file does not match itself.
	needles := [][]byte{
		[]byte(".." + "/shared"),
		[]byte("shared/" + "DESIGN" + ".md"),
	}
	files := 0
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree, not yet committed
			}
			t.Fatalf("read %s: %v", name, err)
		}
		files++
		for _, n := range needles {
			if i := bytes.Index(data, n); i >= 0 {
				line := 1 + bytes.Count(data[:i], []byte("\n"))
				t.Errorf("%s:%d mentions %q, which is not part of the repository; point at docs/ instead", name, line, n)
			}
		}
	}
	if files < 10 {
		t.Fatalf("checked only %d tracked files: is %s the repository root?", files, root)
	}
}
