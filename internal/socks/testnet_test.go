package socks_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared() // stops the private network if a test started it
	os.Exit(code)
}

// TestPrivateNetworkF0 dials a well-formed v3 address that nobody publishes
// through a client of the private Tor network: tor asks the HSDirs, none has
// the descriptor, and the reply is F0 (0.3 s once bootstrapped, DESIGN.md).
func TestPrivateNetworkF0(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Tor network (~10 s); skipped in -short mode")
	}
	n := testnet.Shared(t)
	d := (&socks.Dialer{ProxyAddr: n.SocksAddr(), Timeout: 60 * time.Second}).ForPeer("unpublished")
	start := time.Now()
	_, err := d.DialContext(t.Context(), "tcp", vectorOnion+":80")
	var re *socks.ReplyError
	if !errors.Is(err, socks.ErrOnionServiceUnreachable) || !errors.As(err, &re) || re.Code != socks.ReplyOnionDescNotFound {
		t.Fatalf("err = %v; want ErrOnionServiceUnreachable with reply 0xF0", err)
	}
	if !socks.Retryable(err) {
		t.Errorf("F0 not retryable: %v", err)
	}
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
}
