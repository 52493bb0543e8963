package socks_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
)

// realTor runs tor cut off from any network: its SOCKS listeners parse and
// judge requests exactly as in production, but it cannot build a circuit.
// "DisableNetwork 1" would be the obvious way, but tor then opens no SOCKS
// listener at all ("Tor will not make or accept non-control network
// connections"), so instead tor may only use one bridge, on a loopback port
// where nothing listens: nothing ever leaves the machine.
type realTor struct {
	tcp, unix string
}

var socksReady = regexp.MustCompile(`Opened Socks listener connection \(ready\) on (\S+)`)

func startTor(t *testing.T) realTor {
	t.Helper()
	bin, err := exec.LookPath("tor")
	if err != nil {
		t.Fatalf("tor is required for this test (apt install tor): %v", err)
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// tor refuses a unix socket in a directory others can read; t.TempDir's
	// own subdirectory is 0755.
	sockDir := filepath.Join(dir, "sock")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	unixPath := filepath.Join(sockDir, "socks.sock")
	torrc := strings.Join([]string{
		"DataDirectory " + filepath.Join(dir, "data"),
		"UseBridges 1",
		"Bridge " + deadAddr(t),
		"SocksPort 127.0.0.1:auto ExtendedErrors",
		"SocksPort unix:" + unixPath + " ExtendedErrors",
		"ControlPort 0",
		"Log notice stdout",
		"GeoIPFile " + empty, // saves ~0.3 s of CPU parsing the real one
		"GeoIPv6File " + empty,
		"AvoidDiskWrites 1",
		// tor exits by itself if the test binary dies before Cleanup runs.
		fmt.Sprintf("__OwningControllerProcess %d", os.Getpid()),
	}, "\n")
	rc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(rc, []byte(torrc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", rc, "--defaults-torrc", empty)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		log     bytes.Buffer
		drained = make(chan struct{})
		ready   = make(chan string, 4)
	)
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := socksReady.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-drained
		cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("tor log:\n%s", log.String())
			mu.Unlock()
		}
	})
	var r realTor
	timeout := time.After(15 * time.Second)
	for r.tcp == "" || r.unix == "" {
		select {
		case a := <-ready:
			if strings.HasPrefix(a, "/") {
				r.unix = "unix:" + a
			} else {
				r.tcp = a
			}
		case <-drained:
			t.Fatal("tor exited before opening its SOCKS listeners")
		case <-timeout:
			t.Fatal("tor did not open its SOCKS listeners within 15 s")
		}
	}
	return r
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// corrupt changes one character of the public-key part of an onion address,
// so that its length and alphabet stay valid but the checksum does not.
func corrupt(onion string) string {
	c := byte('a')
	if onion[0] == 'a' {
		c = 'b'
	}
	return string(c) + onion[1:]
}

// TestRealTor runs the dialer against a real tor: malformed onion names are
// refused with F6 at once (tor checks length, version and checksum before
// touching the network), over both TCP and unix SocksPorts, with a ForPeer
// credential that tor accepts; names that need the network run into the
// dialer's own timeout, classified by destination.
func TestRealTor(t *testing.T) {
	if testing.Short() {
		t.Skip("starts tor; skipped in -short mode")
	}
	tor := startTor(t)
	for _, proxy := range []string{tor.tcp, tor.unix} {
		d := (&socks.Dialer{ProxyAddr: proxy, Timeout: 10 * time.Second}).ForPeer("peer")
		for _, host := range []string{
			corrupt(vectorOnion),               // valid length and alphabet, bad checksum
			"not-an-onion-address.onion",       // junk name
			strings.Repeat("a", 16) + ".onion", // old v2 length, no longer supported
			strings.ToUpper(corrupt(vectorOnion)),
		} {
			_, err := d.DialContext(t.Context(), "tcp", host+":80")
			var re *socks.ReplyError
			if !errors.Is(err, socks.ErrBadAddress) || !errors.As(err, &re) || re.Code != socks.ReplyOnionBadAddress || socks.Retryable(err) {
				t.Errorf("%s via %s: %v; want ErrBadAddress with reply 0xF6", host, proxy, err)
			}
		}
	}

	// Cut off from the network, tor holds these streams until its own
	// SocksTimeout (120 s); the dialer gives up after its Timeout.
	d := &socks.Dialer{ProxyAddr: tor.tcp, Timeout: time.Second, Isolation: "cut-off"}
	for _, tc := range []struct {
		host string
		kind error
	}{
		// A DNS name goes to tor unresolved (that it is sent as ATYP 0x03
		// rather than resolved here is asserted in TestNeverResolves).
		{"leak-check.invalid", socks.ErrCircuitBuildFailed},
		// A well-formed address: tor would fetch its descriptor.
		{vectorOnion, socks.ErrOnionServiceUnreachable},
	} {
		start := time.Now()
		_, err := d.DialContext(t.Context(), "tcp", tc.host+":80")
		if !errors.Is(err, tc.kind) || !errors.Is(err, context.DeadlineExceeded) || !socks.Retryable(err) {
			t.Errorf("%s: %v; want %v after the dial timeout", tc.host, err, tc.kind)
		}
		t.Logf("%s: %v after %v", tc.host, err, time.Since(start).Round(time.Millisecond))
	}
}
