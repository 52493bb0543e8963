package tor

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/torctl"
	"github.com/mmogit/mmogit/internal/torctl/torctltest"
)

// sentAuth reports whether the fake control port received anything that
// carries a secret (the cookie, an HMAC of it or a password).
func sentAuth(srv *torctltest.Server) []string {
	var out []string
	for _, c := range srv.Commands() {
		if strings.HasPrefix(c, "AUTH") {
			out = append(out, c)
		}
	}
	return out
}

// TestAttachTCPRequiresSafeCookie: a TCP control port offering only COOKIE
// (an impostor could, to collect the raw cookie) is refused before anything
// secret is sent; with a configured password, HASHEDPASSWORD is used.
func TestAttachTCPRequiresSafeCookie(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetAuthMethods("COOKIE")
	_, err := Attach(testCtx(t, 5*time.Second), AttachConfig{ControlAddr: srv.Addr()})
	if !errors.Is(err, torctl.ErrSafeCookieRequired) {
		t.Fatalf("COOKIE-only TCP port: %v, want ErrSafeCookieRequired", err)
	}
	if s := sentAuth(srv); len(s) != 0 {
		t.Fatalf("sent %q to a COOKIE-only port", s)
	}

	srv = torctltest.NewServer(t)
	srv.SetAuthMethods("HASHEDPASSWORD")
	srv.SetPassword("secret")
	srv.SetInfo("net/listeners/socks", `"127.0.0.1:39999"`)
	d, err := Attach(testCtx(t, 5*time.Second), AttachConfig{ControlAddr: srv.Addr(), Password: "secret"})
	if err != nil {
		t.Fatalf("password attach: %v", err)
	}
	d.Stop(testCtx(t, time.Second))
	if s := sentAuth(srv); len(s) != 1 || s[0] != `AUTHENTICATE "secret"` {
		t.Fatalf("password attach sent %q", s)
	}
}

// TestAttachOldTor: attaching to a tor older than 0.4.8 fails with
// ErrTorTooOld naming the version and how to upgrade.
func TestAttachOldTor(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetInfo("version", "0.4.7.16")
	_, err := Attach(testCtx(t, 5*time.Second), AttachConfig{ControlAddr: srv.Addr()})
	if !errors.Is(err, ErrTorTooOld) || !strings.Contains(err.Error(), "0.4.7.16") ||
		!strings.Contains(err.Error(), "deb.torproject.org") || !strings.Contains(err.Error(), srv.Addr()) {
		t.Fatalf("err = %v, want ErrTorTooOld naming 0.4.7.16, the address and the upgrade path", err)
	}
	for _, c := range srv.Commands() {
		if strings.HasPrefix(c, "SETEVENTS") {
			t.Fatalf("went on to wait for bootstrap of a too old tor: %q", srv.Commands())
		}
	}

	srv = torctltest.NewServer(t)
	srv.SetInfo("version", "0.4.8.1-alpha")
	srv.SetInfo("net/listeners/socks", `"127.0.0.1:39999"`)
	d, err := Attach(testCtx(t, 5*time.Second), AttachConfig{ControlAddr: srv.Addr()})
	if err != nil {
		t.Fatalf("0.4.8.1-alpha refused: %v", err)
	}
	d.Stop(testCtx(t, time.Second))
}

// TestManagedRequiresSafeCookie: the control socket of a tor we started
// must offer SAFECOOKIE (our torrc has CookieAuthentication 1); a socket
// offering only COOKIE is something else and gets no cookie.
func TestManagedRequiresSafeCookie(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetAuthMethods("COOKIE")
	dir, err := os.MkdirTemp("", "mmogit-tor")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cookie, err := os.ReadFile(srv.CookiePath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "control_auth_cookie"), cookie, 0o600)
	// The fake listens on TCP; the managed tor's control port is the
	// socket in its data directory, so forward one to the other.
	serve(t, "unix", filepath.Join(dir, controlSocketName), func(c net.Conn) {
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				return
			}
			defer s.Close()
			go io.Copy(s, c)
			io.Copy(c, s)
		}()
	})
	d := &Daemon{cfg: Config{DataDir: dir}, output: &tailBuffer{max: 1}, done: make(chan struct{})}
	err = d.connect(testCtx(t, 5*time.Second))
	if !errors.Is(err, torctl.ErrSafeCookieRequired) {
		t.Fatalf("connect: %v, want ErrSafeCookieRequired", err)
	}
	if s := sentAuth(srv); len(s) != 0 {
		t.Fatalf("sent %q to a COOKIE-only control socket", s)
	}
}

// TestTorVersionTimeout: a tor binary whose --version hangs is given up on.
func TestTorVersionTimeout(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "tor")
	os.WriteFile(fake, []byte("#!/bin/sh\nsleep 30\n"), 0o755)
	defer func(d time.Duration) { versionTimeout = d }(versionTimeout)
	versionTimeout = 200 * time.Millisecond
	// The test context outlives the fake tor's sleep only if the version
	// timeout is ignored; then the error would not say "did not finish".
	_, _, err := findTor(testCtx(t, 10*time.Second), fake)
	if !errors.Is(err, ErrTorNotFound) || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("err = %v", err)
	}
}

// TestPublishServiceIDMismatch: if tor answers ADD_ONION with a ServiceID
// other than the key's address (the key did not reach tor as we sent it),
// Publish fails with ErrServiceIDMismatch and removes what tor created.
func TestPublishServiceIDMismatch(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetInfo("net/listeners/socks", `"127.0.0.1:39999"`)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	want := onion.Encode(key.Public().(ed25519.PublicKey))
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	wrong := onion.Encode(other.Public().(ed25519.PublicKey))
	var serviceID atomic.Value
	serviceID.Store(wrong)
	srv.Handle("ADD_ONION", func(string) []string {
		return []string{"250-ServiceID=" + serviceID.Load().(string), "250 OK"}
	})
	ctx := testCtx(t, 5*time.Second)
	d, err := Attach(ctx, AttachConfig{ControlAddr: srv.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(ctx)
	cfg := ServiceConfig{Key: key, VirtualPort: 80, Target: "127.0.0.1:1"}
	_, err = d.Publish(ctx, cfg)
	if !errors.Is(err, ErrServiceIDMismatch) || !strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Publish with a wrong ServiceID: %v, want ErrServiceIDMismatch naming both", err)
	}
	if !slices.Contains(srv.Commands(), "DEL_ONION "+wrong) {
		t.Errorf("the mismatched service was not removed: %q", srv.Commands())
	}

	// The same fake with the right ServiceID publishes.
	serviceID.Store(want)
	s, err := d.Publish(ctx, cfg)
	if err != nil || s.ID != want {
		t.Fatalf("Publish with the right ServiceID: %v, %v", s, err)
	}
}
