package platform

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be a child process that just waits.
func TestMain(m *testing.M) {
	if os.Getenv("PLATFORM_TEST_SLEEP") != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestTryLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	open := func() *os.File {
		t.Helper()
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b := open(), open()
	if err := TryLock(a); err != nil {
		t.Fatal(err)
	}
	// A second open file does not get the lock, even in this process.
	if err := TryLock(b); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("second holder: %v, want ErrWouldBlock", err)
	}
	// The holder's file stays readable and writable by others (the agent
	// writes its pid into its lock file, and a second agent reads it).
	if _, err := a.WriteString("1234\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "1234\n" {
		t.Fatalf("read a locked file: %q, %v", got, err)
	}
	if err := Unlock(a); err != nil {
		t.Fatal(err)
	}
	if err := TryLock(b); err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	// Closing the holder releases the lock too.
	b.Close()
	c := open()
	if err := TryLock(c); err != nil {
		t.Fatalf("after Close: %v", err)
	}
}

func TestProcesses(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PLATFORM_TEST_SLEEP=1")
	NewGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if !Alive(pid) {
		t.Fatal("a started child is not alive")
	}
	if err := KillGroup(pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("killed child exited cleanly")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("KillGroup did not end the child")
	}
	if Alive(pid) {
		t.Errorf("pid %d still alive after it was killed and reaped", pid)
	}
}

// TestCrossCompile builds everything for the other supported systems, so
// a Linux-only call (syscall.Flock, Pdeathsig, Setsid, ...) outside a
// build-tagged file fails here, not on a user's Mac. `make test` also
// vets for both.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module twice")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		t.Skipf("no go command: %v", err)
	}
	for _, goos := range []string{"darwin", "windows"} {
		cmd := exec.Command(gobin, "build", "-o", os.DevNull, "../../...")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH=amd64", "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("GOOS=%s go build ./...: %v\n%s", goos, err, strings.TrimSpace(string(out)))
		}
	}
}

func TestOthersAccess(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range []os.FileMode{0o600, 0o400, 0o640, 0o604, 0o644, 0o700, 0o711} {
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := m & 0o077
		if runtime.GOOS == "windows" {
			want = 0
		}
		if got := OthersAccess(fi); got != want {
			t.Errorf("mode %04o: OthersAccess = %04o, want %04o", m, got, want)
		}
	}
}
