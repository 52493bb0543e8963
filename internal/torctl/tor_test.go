package torctl_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/torctl"
)

// realTor starts the real tor with the network disabled and returns it
// with its control port address and data directory; the process is killed
// by t.Cleanup.
type realTor struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
}

func startTor(t *testing.T) *realTor {
	t.Helper()
	return startTorWith(t, "CookieAuthentication 1")
}

// startTorWith starts tor like startTor with auth as its authentication
// torrc lines instead of CookieAuthentication 1.
func startTorWith(t *testing.T, auth ...string) *realTor {
	t.Helper()
	bin, err := exec.LookPath("tor")
	if err != nil {
		t.Fatalf("tor not installed (apt-get install -y tor): %v", err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(data, 0o700)
	portFile := filepath.Join(dir, "control.port")
	torrc := strings.Join(append([]string{
		"DataDirectory " + data,
		"DisableNetwork 1",
		"SocksPort auto",
		"ControlPort auto",
		"ControlPortWriteToFile " + portFile,
		"Log notice file " + filepath.Join(dir, "tor.log"),
		"GeoIPFile /dev/null",
		"GeoIPv6File /dev/null",
	}, auth...), "\n") + "\n"
	rc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(rc, []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", rc)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(portFile)
		if err == nil && strings.HasPrefix(string(b), "PORT=") && strings.HasSuffix(string(b), "\n") {
			return &realTor{cmd: cmd, addr: strings.TrimSpace(strings.TrimPrefix(string(b), "PORT=")), dataDir: data}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("tor did not write its control port file")
	return nil
}

func (rt *realTor) connect(t *testing.T) *torctl.Conn {
	t.Helper()
	ctx := testCtx(t)
	c, err := torctl.Dial(ctx, "tcp", rt.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, torctl.AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRealTor exercises the client against tor 0.4.8+ with DisableNetwork
// (nothing leaves the machine). One tor process serves the subtests.
func TestRealTor(t *testing.T) {
	rt := startTor(t)
	c := rt.connect(t)
	ctx := testCtx(t)

	t.Run("protocolinfo offers safecookie", func(t *testing.T) {
		c2, err := torctl.Dial(ctx, "tcp", rt.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		pi, err := c2.ProtocolInfo(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(pi.AuthMethods, ","), "SAFECOOKIE") || pi.CookieFile != filepath.Join(rt.dataDir, "control_auth_cookie") {
			t.Fatalf("protocolinfo = %+v", pi)
		}
	})

	t.Run("wrong cookie fails the server hash check", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "cookie")
		os.WriteFile(bad, make([]byte, 32), 0o600)
		c2, err := torctl.Dial(ctx, "tcp", rt.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		if err := c2.Authenticate(ctx, torctl.AuthOptions{CookiePath: bad}); !errors.Is(err, torctl.ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})

	t.Run("unauthenticated commands refused", func(t *testing.T) {
		c2, err := torctl.Dial(ctx, "tcp", rt.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c2.Close()
		_, err = c2.GetInfo(ctx, "version")
		var re *torctl.ReplyError
		if !errors.As(err, &re) || re.Code != 514 {
			t.Fatalf("err = %v, want 514", err)
		}
	})

	t.Run("getinfo version", func(t *testing.T) {
		// With DisableNetwork tor opens no SOCKS listener, so
		// net/listeners/socks is present but empty.
		m, err := c.GetInfo(ctx, "version", "net/listeners/socks")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m["net/listeners/socks"]; !strings.HasPrefix(m["version"], "0.4.") || !ok {
			t.Fatalf("getinfo = %q", m)
		}
		st, err := c.BootstrapPhase(ctx)
		if err != nil || st.Severity == "" {
			t.Fatalf("bootstrap phase = %+v, %v", st, err)
		}
	})

	t.Run("setconf getconf resetconf", func(t *testing.T) {
		if err := c.SetConf(ctx, torctl.KeyValue{Key: "ContactInfo", Value: `mmogit "test" \ x`}); err != nil {
			t.Fatal(err)
		}
		m, err := c.GetConf(ctx, "ContactInfo", "SocksPort")
		if err != nil {
			t.Fatal(err)
		}
		if got := m["ContactInfo"]; len(got) != 1 || got[0] != `mmogit "test" \ x` {
			t.Fatalf("ContactInfo = %q", got)
		}
		if got := m["SocksPort"]; len(got) != 1 || got[0] != "auto" {
			t.Fatalf("SocksPort = %q", got)
		}
		if err := c.ResetConf(ctx, "ContactInfo"); err != nil {
			t.Fatal(err)
		}
		m, _ = c.GetConf(ctx, "ContactInfo")
		if v, ok := m["ContactInfo"]; !ok || len(v) != 0 {
			t.Fatalf("after reset ContactInfo = %q, %v", v, ok)
		}
		var re *torctl.ReplyError
		if err := c.SetConf(ctx, torctl.KeyValue{Key: "NoSuchOption", Value: "1"}); !errors.As(err, &re) || re.Code != 552 {
			t.Fatalf("bad option err = %v", err)
		}
	})

	t.Run("add onion from RFC 8032 seed", func(t *testing.T) {
		// RFC 8032 §7.1 TEST 1 seed.
		seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
		key, err := torctl.ExpandedKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.AddOnion(ctx, torctl.AddOnionRequest{
			Key:   key,
			Ports: []torctl.PortMapping{{Virtual: 4001, Target: "127.0.0.1:1"}},
			Flags: []torctl.OnionFlag{torctl.FlagDiscardPK},
			PoW:   &torctl.PoWParams{QueueRate: 100, QueueBurst: 500},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.ServiceID != "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid" || res.PrivateKey != "" {
			t.Fatalf("add onion = %+v", res)
		}
		m, err := c.GetInfo(ctx, "onions/current")
		if err != nil || !strings.Contains(m["onions/current"], res.ServiceID) {
			t.Fatalf("onions/current = %q, %v", m, err)
		}
		if err := c.DelOnion(ctx, res.ServiceID); err != nil {
			t.Fatal(err)
		}
		var re *torctl.ReplyError
		if err := c.DelOnion(ctx, res.ServiceID); !errors.As(err, &re) || re.Code != 552 {
			t.Fatalf("second DEL_ONION err = %v", err)
		}
	})

	t.Run("add onion new key with client auth", func(t *testing.T) {
		cpriv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		pub := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(cpriv.PublicKey().Bytes())
		res, err := c.AddOnion(ctx, torctl.AddOnionRequest{
			Ports:        []torctl.PortMapping{{Virtual: 80}},
			MaxStreams:   8,
			Flags:        []torctl.OnionFlag{torctl.FlagMaxStreamsCloseCircuit},
			ClientAuthV3: []string{pub},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.ServiceID) != 56 || !strings.HasPrefix(res.PrivateKey, "ED25519-V3:") {
			t.Fatalf("add onion = %+v", res)
		}
		if err := c.DelOnion(ctx, res.ServiceID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("onion client auth add and remove", func(t *testing.T) {
		cpriv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		addr := "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
		if err := c.OnionClientAuthAdd(ctx, addr, base64.StdEncoding.EncodeToString(cpriv.Bytes())); err != nil {
			t.Fatal(err)
		}
		if err := c.OnionClientAuthRemove(ctx, addr); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("events and signal", func(t *testing.T) {
		sub, err := c.Subscribe(ctx, "SIGNAL")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Cancel()
		if err := c.Signal(ctx, "NEWNYM"); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-sub.Events():
			if ev.Name != "SIGNAL" || ev.Text != "NEWNYM" {
				t.Fatalf("event = %+v", ev)
			}
		case <-ctx.Done():
			t.Fatal("no SIGNAL event")
		}
	})

	t.Run("killing tor closes the connection", func(t *testing.T) {
		errc := make(chan error, 1)
		sub, err := c.Subscribe(ctx, "HS_DESC")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			errc <- torctl.WaitHSDescUploaded(ctx, sub, "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid")
		}()
		rt.cmd.Process.Kill()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after tor died")
		}
		if err := <-errc; !errors.Is(err, torctl.ErrClosed) {
			t.Fatalf("waiting call err = %v", err)
		}
		if _, err := c.GetInfo(ctx, "version"); !errors.Is(err, torctl.ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
	})
}

// TestRealTorHashedPassword: a tor with HashedControlPassword and no cookie
// offers only HASHEDPASSWORD; the right password authenticates, a wrong one
// gets tor's 515, and RequireSafeCookie refuses before sending anything.
func TestRealTorHashedPassword(t *testing.T) {
	const pw = "correct horse"
	out, err := exec.Command("tor", "--quiet", "--hash-password", pw).Output()
	if err != nil {
		t.Fatalf("tor --hash-password: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "16:") {
		t.Fatalf("tor --hash-password printed %q", out)
	}
	rt := startTorWith(t, "CookieAuthentication 0", "HashedControlPassword "+f[len(f)-1])
	ctx := testCtx(t)
	dial := func() *torctl.Conn {
		c, err := torctl.Dial(ctx, "tcp", rt.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	pi, err := dial().ProtocolInfo(ctx)
	if err != nil || !slices.Equal(pi.AuthMethods, []string{"HASHEDPASSWORD"}) {
		t.Fatalf("protocolinfo = %+v, %v", pi, err)
	}
	if err := dial().Authenticate(ctx, torctl.AuthOptions{Password: pw, RequireSafeCookie: true}); !errors.Is(err, torctl.ErrSafeCookieRequired) {
		t.Errorf("RequireSafeCookie against a password-only tor: %v", err)
	}
	var re *torctl.ReplyError
	if err := dial().Authenticate(ctx, torctl.AuthOptions{Password: "wrong"}); !errors.As(err, &re) || re.Code != 515 {
		t.Errorf("wrong password: %v, want 515", err)
	}
	c := dial()
	if err := c.Authenticate(ctx, torctl.AuthOptions{Password: pw}); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if v, err := c.GetInfo(ctx, "version"); err != nil || v["version"] == "" {
		t.Fatalf("GETINFO version after password auth: %v, %v", v, err)
	}
}
