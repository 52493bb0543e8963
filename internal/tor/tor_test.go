package tor

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/torctl"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startOffline starts the real tor with DisableNetwork (nothing leaves the
// machine) and stops it in t.Cleanup.
func startOffline(t *testing.T) *Daemon {
	t.Helper()
	d, err := Start(testCtx(t, 30*time.Second), Config{DataDir: filepath.Join(t.TempDir(), "tor"), DisableNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    [4]int
		atLeast bool // >= 0.4.8
		bad     bool
	}{
		{in: "Tor version 0.4.9.11.", want: [4]int{0, 4, 9, 11}, atLeast: true},
		{in: "0.4.8.12-dev", want: [4]int{0, 4, 8, 12}, atLeast: true},
		{in: "0.4.7.16", want: [4]int{0, 4, 7, 16}},
		{in: "0.5.0.1-alpha (git-abc)", want: [4]int{0, 5, 0, 1}, atLeast: true},
		{in: "1.0", bad: true},
		{in: "Tor version x.y.z.w.", bad: true},
	}
	for _, tt := range tests {
		v, err := ParseVersion(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseVersion(%q) = %v, want error", tt.in, v)
			}
			continue
		}
		if err != nil || [4]int{v.Major, v.Minor, v.Micro, v.Patch} != tt.want || v.AtLeast(0, 4, 8) != tt.atLeast {
			t.Errorf("ParseVersion(%q) = %+v, %v", tt.in, v, err)
		}
	}
}

func TestBuildTorrc(t *testing.T) {
	base := Config{DataDir: "/var/lib/mmogit/tor"}
	lines, err := buildTorrc(base, 4242)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"DataDirectory /var/lib/mmogit/tor",
		"SocksPort unix:/var/lib/mmogit/tor/socks.sock ExtendedErrors IsolateSOCKSAuth",
		"ControlSocket /var/lib/mmogit/tor/control.sock",
		"CookieAuthentication 1",
		"__OwningControllerProcess 4242",
		"Log notice file /var/lib/mmogit/tor/tor.log",
		"ShutdownWaitLength 0",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("torrc lacks %q:\n%s", want, strings.Join(lines, "\n"))
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "9050") || strings.Contains(l, "9051") {
			t.Errorf("fixed port in %q", l)
		}
	}

	// No TCP listener of any kind: the only ports are the two unix
	// sockets, and nothing says "auto" or names an address.
	for _, l := range lines {
		if opt, ok := opensListener(l); ok && l != "SocksPort unix:/var/lib/mmogit/tor/socks.sock ExtendedErrors IsolateSOCKSAuth" &&
			l != "ControlSocket /var/lib/mmogit/tor/control.sock" {
			t.Errorf("torrc opens listener %s: %q", opt, l)
		}
		if strings.Contains(l, "auto") || strings.Contains(l, "127.0.0.1") || strings.Contains(l, "WorldWritable") || strings.Contains(l, "GroupWritable") {
			t.Errorf("torrc line %q", l)
		}
	}

	// A data dir too long for a unix socket: the sockets go to the
	// socket directory Start made; buildTorrc refuses one still too long,
	// and never falls back to TCP.
	long := Config{DataDir: "/" + strings.Repeat("d", 120)}
	if lines, err = buildTorrc(long, 1); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "TMPDIR") {
		t.Errorf("long data dir without a socket dir: %q, %v; want ErrBadConfig naming TMPDIR", lines, err)
	}
	long.sockDir = "/tmp/mmogit-tor-123"
	lines, err = buildTorrc(long, 1)
	for _, want := range []string{
		"DataDirectory " + long.DataDir,
		"SocksPort unix:/tmp/mmogit-tor-123/socks.sock ExtendedErrors IsolateSOCKSAuth",
		"ControlSocket /tmp/mmogit-tor-123/control.sock",
	} {
		if err != nil || !slices.Contains(lines, want) {
			t.Errorf("long data dir: torrc lacks %q: %q, %v", want, lines, err)
		}
	}

	// A home directory with a space: tor splits port lines at spaces.
	spaced := Config{DataDir: "/home/J Doe/.mmogit/tor-data"}
	lines, err = buildTorrc(spaced, 1)
	for _, want := range []string{
		"DataDirectory /home/J Doe/.mmogit/tor-data",
		`ControlSocket unix:"/home/J Doe/.mmogit/tor-data/control.sock"`,
		`SocksPort unix:"/home/J Doe/.mmogit/tor-data/socks.sock" ExtendedErrors IsolateSOCKSAuth`,
		"Log notice file /home/J Doe/.mmogit/tor-data/tor.log",
	} {
		if err != nil || !slices.Contains(lines, want) {
			t.Errorf("spaced data dir: torrc lacks %q: %q, %v", want, lines, err)
		}
	}
	quoted := Config{DataDir: `/tmp/a"b`}
	if lines, err = buildTorrc(quoted, 1); !errors.Is(err, ErrBadConfig) {
		t.Errorf("data dir with a quote and no socket dir: %q, %v", lines, err)
	}

	br := base
	br.UseBridges = true
	br.Obfs4Proxy = "/usr/bin/obfs4proxy"
	br.Bridges = []string{"obfs4 127.0.0.1:9999 0123456789ABCDEF0123456789ABCDEF01234567 cert=abc iat-mode=0", "Bridge 127.0.0.1:1 0123456789ABCDEF0123456789ABCDEF01234567"}
	br.ExtraTorrc = []string{"TestingTorNetwork 1"}
	lines, err = buildTorrc(br, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"UseBridges 1",
		"ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy",
		"Bridge obfs4 127.0.0.1:9999 0123456789ABCDEF0123456789ABCDEF01234567 cert=abc iat-mode=0",
		"Bridge 127.0.0.1:1 0123456789ABCDEF0123456789ABCDEF01234567",
		"TestingTorNetwork 1",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("torrc lacks %q", want)
		}
	}

	for name, cfg := range map[string]Config{
		"relative dir":      {DataDir: "tor"},
		"newline in bridge": {DataDir: "/d", UseBridges: true, Bridges: []string{"obfs4 1.2.3.4:5 FP\nControlPort 9051"}},
		"bridges missing":   {DataDir: "/d", UseBridges: true},
		"empty bridge":      {DataDir: "/d", UseBridges: true, Bridges: []string{"  "}},
		"newline in extra":  {DataDir: "/d", ExtraTorrc: []string{"Log notice stdout\nControlPort 9051"}},
		// The managed tor opens no listener beyond its two unix sockets.
		"extra SocksPort":      {DataDir: "/d", ExtraTorrc: []string{"SocksPort 127.0.0.1:9050"}},
		"extra socksport auto": {DataDir: "/d", ExtraTorrc: []string{"  socksport auto"}},
		"extra +SocksPort":     {DataDir: "/d", ExtraTorrc: []string{"+SocksPort 9150"}},
		"extra __SocksPort":    {DataDir: "/d", ExtraTorrc: []string{"__SocksPort 9150"}},
		"extra ControlPort":    {DataDir: "/d", ExtraTorrc: []string{"ControlPort 9051"}},
		"extra ORPort":         {DataDir: "/d", ExtraTorrc: []string{"ORPort 9001"}},
		"extra DirPort":        {DataDir: "/d", ExtraTorrc: []string{"DirPort 9030"}},
		"extra DNSPort":        {DataDir: "/d", ExtraTorrc: []string{"DNSPort 5353"}},
		"extra TransPort":      {DataDir: "/d", ExtraTorrc: []string{"TransPort 9040"}},
		"extra HTTPTunnelPort": {DataDir: "/d", ExtraTorrc: []string{"HTTPTunnelPort 8118"}},
		"extra MetricsPort":    {DataDir: "/d", ExtraTorrc: []string{"MetricsPort 127.0.0.1:9035"}},
	} {
		if _, err := buildTorrc(cfg, 1); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: err = %v, want ErrBadConfig", name, err)
		}
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := Start(testCtx(t, 5*time.Second), Config{TorPath: "/nonexistent/tor", DataDir: t.TempDir()})
	if !errors.Is(err, ErrTorNotFound) || !strings.Contains(err.Error(), "apt-get install -y tor") {
		t.Fatalf("err = %v", err)
	}
}

func TestOldTor(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "tor")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 'Tor version 0.4.7.16.'\n"), 0o755)
	_, err := Start(testCtx(t, 5*time.Second), Config{TorPath: fake, DataDir: t.TempDir()})
	if !errors.Is(err, ErrTorTooOld) || !strings.Contains(err.Error(), "0.4.7.16") || !strings.Contains(err.Error(), fake) ||
		!strings.Contains(err.Error(), "deb.torproject.org") {
		t.Fatalf("err = %v, want ErrTorTooOld naming the binary, its version and where to get a newer tor", err)
	}
}

func TestMissingObfs4Proxy(t *testing.T) {
	_, err := Start(testCtx(t, 5*time.Second), Config{
		DataDir:    t.TempDir(),
		UseBridges: true,
		Bridges:    []string{"obfs4 127.0.0.1:1 0123456789ABCDEF0123456789ABCDEF01234567 cert=x iat-mode=0"},
		Obfs4Proxy: "/nonexistent/obfs4proxy",
	})
	if !errors.Is(err, ErrObfs4ProxyNotFound) || !strings.Contains(err.Error(), "/nonexistent/obfs4proxy") {
		t.Fatalf("err = %v", err)
	}
	// Nothing configured and neither name on PATH: the error names both.
	torPath, err := exec.LookPath("tor")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tor not installed; scripts/deps.sh installs it")
		}
		t.Skip("tor not installed")
	}
	t.Setenv("PATH", t.TempDir())
	_, err = Start(testCtx(t, 5*time.Second), Config{
		TorPath:    torPath,
		DataDir:    t.TempDir(),
		UseBridges: true,
		Bridges:    []string{"obfs4 127.0.0.1:1 0123456789ABCDEF0123456789ABCDEF01234567 cert=x iat-mode=0"},
	})
	if !errors.Is(err, ErrObfs4ProxyNotFound) || !strings.Contains(err.Error(), "lyrebird") || !strings.Contains(err.Error(), "obfs4proxy") {
		t.Fatalf("err = %v, want ErrObfs4ProxyNotFound naming lyrebird and obfs4proxy", err)
	}
}

func TestBadTorrcReportsTorsError(t *testing.T) {
	_, err := Start(testCtx(t, 20*time.Second), Config{
		DataDir: filepath.Join(t.TempDir(), "tor"), DisableNetwork: true,
		ExtraTorrc: []string{"NoSuchOptionAtAll 1"},
	})
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "NoSuchOptionAtAll") {
		t.Fatalf("err = %v", err)
	}
}

func TestStartOffline(t *testing.T) {
	d := startOffline(t)
	ctx := testCtx(t, 20*time.Second)

	if !d.Version().AtLeast(0, 4, 8) {
		t.Fatalf("version %v", d.Version())
	}
	for path, want := range map[string]os.FileMode{
		d.DataDir():                         0o700,
		filepath.Join(d.DataDir(), "torrc"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	// The control port is a unix socket only tor's user can use; there is
	// no TCP control port.
	sock := filepath.Join(d.DataDir(), "control.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("control socket %v, %v", fi.Mode(), err)
	}
	m, err := d.ControlConn().GetInfo(ctx, "net/listeners/control", "status/bootstrap-phase")
	if err != nil || strings.Contains(m["net/listeners/control"], "127.0.0.1") {
		t.Errorf("control listeners %q, %v", m, err)
	}
	// No TCP listener of any kind. (With DisableNetwork tor opens no
	// SOCKS listener at all; TestTestnetBootstrapPublishDial checks the
	// unix SOCKS socket of a tor with network.)
	checkNoTCPListeners(t, ctx, d)

	t.Run("unauthenticated control connection refused", func(t *testing.T) {
		c, err := torctl.Dial(ctx, "unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.GetInfo(ctx, "version")
		var re *torctl.ReplyError
		if !errors.As(err, &re) || re.Code != 514 {
			t.Fatalf("err = %v, want 514", err)
		}
	})

	t.Run("publish from key", func(t *testing.T) {
		// RFC 8032 §7.1 TEST 1; tor's own vector gives this address.
		seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
		client, _ := ecdh.X25519().GenerateKey(rand.Reader)
		s, err := d.Publish(ctx, ServiceConfig{
			Key:         ed25519.NewKeyFromSeed(seed),
			VirtualPort: 4001,
			Target:      "127.0.0.1:1",
			MaxStreams:  8,
			PoW:         true,
			ClientAuth:  []*ecdh.PublicKey{client.PublicKey()},
		})
		if err != nil {
			t.Fatal(err)
		}
		if s.ID != "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid" || !s.PoWEnabled {
			t.Fatalf("service %+v", s)
		}
		// Nothing is written to disk for an ADD_ONION service.
		filepath.WalkDir(d.DataDir(), func(p string, e os.DirEntry, err error) error {
			if e != nil && strings.Contains(e.Name(), "hs_ed25519") {
				t.Errorf("key material on disk: %s", p)
			}
			return nil
		})
		// With DisableNetwork the descriptor is never uploaded.
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := s.WaitPublished(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("WaitPublished = %v", err)
		}
		if err := s.Remove(ctx); err != nil {
			t.Fatal(err)
		}
		on, _ := d.ControlConn().GetInfo(ctx, "onions/current")
		if strings.Contains(on["onions/current"], s.ID) {
			t.Fatalf("service still listed after Remove: %q", on)
		}
	})

	t.Run("new circuits respects the rate limit", func(t *testing.T) {
		old := newnymInterval
		newnymInterval = 300 * time.Millisecond
		defer func() { newnymInterval = old }()
		if def, err := d.NewCircuits(ctx); err != nil || def != 0 {
			t.Fatalf("first NEWNYM deferred %v, %v", def, err)
		}
		def, err := d.NewCircuits(ctx)
		if err != nil || def <= 0 || def > newnymInterval {
			t.Fatalf("second NEWNYM deferred %v, %v", def, err)
		}
	})
}

func processGone(pid int) bool { return !platform.Alive(pid) }

func TestStopLeavesNoProcess(t *testing.T) {
	d := startOffline(t)
	pid := d.Pid()
	if err := d.Stop(testCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if !errors.Is(d.Err(), ErrExited) || !processGone(pid) {
		t.Fatalf("tor pid %d still there (err %v)", pid, d.Err())
	}
}

func TestOwnershipEndsTorWithConnection(t *testing.T) {
	d := startOffline(t)
	pid := d.Pid()
	d.ControlConn().Close()
	select {
	case <-d.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("tor still running after its owning control connection closed")
	}
	if !processGone(pid) {
		t.Fatalf("tor pid %d still there", pid)
	}
}

// checkNoTCPListeners fails the test if tor reports any listener that is
// not a unix socket.
func checkNoTCPListeners(t *testing.T, ctx context.Context, d *Daemon) {
	t.Helper()
	keys := []string{"net/listeners/or", "net/listeners/dir", "net/listeners/socks", "net/listeners/trans",
		"net/listeners/natd", "net/listeners/dns", "net/listeners/control", "net/listeners/extor", "net/listeners/httptunnel"}
	m, err := d.ControlConn().GetInfo(ctx, keys...)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		for _, f := range strings.Fields(m[k]) {
			if v, _, err := torctl.Unquote(f); err == nil {
				f = v
			}
			if !strings.HasPrefix(f, "unix:") {
				t.Errorf("tor listens on %s (%s); want unix sockets only", f, k)
			}
		}
	}
}

// TestStartLongDataDir: a data dir whose path is too long for a unix
// socket gets its sockets in a private directory of its own, still no TCP
// listener, and the directory goes away with tor.
func TestStartLongDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	ctx := testCtx(t, 30*time.Second)
	d, err := Start(ctx, Config{DataDir: dir, DisableNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	sockDir := d.cfg.sockDir
	if sockDir == "" {
		t.Fatal("no socket directory for a data dir too long for unix sockets")
	}
	if fi, err := os.Stat(filepath.Join(sockDir, "control.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("control socket in %s: %v, %v", sockDir, fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "torrc")); err != nil || !strings.Contains(string(b), "SocksPort unix:"+filepath.Join(sockDir, "socks.sock")+" ") {
		t.Errorf("torrc: %s, %v; want the SOCKS socket in %s", b, err, sockDir)
	}
	if fi, err := os.Stat(sockDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("socket dir %s: %v, %v; want mode 0700", sockDir, fi, err)
	}
	checkNoTCPListeners(t, ctx, d)
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir %s left behind: %v", sockDir, err)
	}
}
