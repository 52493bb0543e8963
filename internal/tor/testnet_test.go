package tor

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/mmogit/mmogit/internal/testnet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared()
	os.Exit(code)
}

// TestTestnetBootstrapPublishDial joins the private Tor network on loopback
// with a managed Daemon, watches it bootstrap to 100 %, publishes an onion
// service from a key, waits for its first descriptor upload and reaches it
// through the network's client.
func TestTestnetBootstrapPublishDial(t *testing.T) {
	if testing.Short() {
		t.Skip("private Tor network: slow (~20 s)")
	}
	nw := testnet.Shared(t)
	ctx := testCtx(t, 3*time.Minute)

	var (
		mu       sync.Mutex
		progress []int
	)
	d, err := Start(ctx, Config{
		DataDir:    filepath.Join(t.TempDir(), "tor"),
		ExtraTorrc: nw.ClientTorrc(),
		Progress: func(s BootstrapStatus) {
			mu.Lock()
			progress = append(progress, s.Progress)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	mu.Lock()
	got := append([]int(nil), progress...)
	mu.Unlock()
	if len(got) < 2 || got[len(got)-1] != 100 {
		t.Fatalf("progress reports %v, want several ending at 100", got)
	}
	// SOCKS is a unix socket in the 0700 data dir that only tor's user
	// can use, and tor has no TCP listener at all.
	socksSock := filepath.Join(d.DataDir(), "socks.sock")
	if got := d.SocksAddr(); got != "unix:"+socksSock {
		t.Fatalf("SocksAddr = %q after bootstrap, want unix:%s", got, socksSock)
	}
	if fi, err := os.Stat(socksSock); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("SOCKS socket %v, %v: want a socket only its owner can use", fi, err)
	}
	checkNoTCPListeners(t, ctx, d)

	ln := serve(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		c.Write([]byte("hello from the onion\n"))
		c.Close()
	})

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := d.Publish(ctx, ServiceConfig{Key: key, VirtualPort: 80, Target: ln.Addr().String(), PoW: true})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.WaitPublished(pctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("published %s after %v", s.Hostname(), time.Since(start))

	// Reach it through the network's own client. Right after the first
	// upload a fetch may still miss the descriptor, so retry.
	dialer, err := proxy.SOCKS5("tcp", nw.SocksAddr(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		line, err := readGreeting(dialer, s.Hostname()+":80")
		if err == nil {
			if line != "hello from the onion\n" {
				t.Fatalf("read %q", line)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("onion service unreachable: %v", err)
		}
		time.Sleep(time.Second)
	}
}

func readGreeting(d proxy.Dialer, addr string) (string, error) {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}
