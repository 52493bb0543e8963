package socks_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/torctl"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testnet.CloseShared() // stops the private network if a test started it
	os.Exit(code)
}

// TestPrivateNetworkF0 dials a well-formed v3 address that nobody publishes
// through a client of the private Tor network: tor asks the HSDirs, none has
// the descriptor, and the reply is F0 (0.3 s once bootstrapped, docs/private-network.md).
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

// TestPrivateNetworkOnion publishes real onion services on the private
// network's client (one tor can host and dial) and checks the paths a peer
// dial takes: success with data both ways (retrying as RetryAfter says),
// an unmapped port (0x05), and a service that requires client
// authorization (F4).
func TestPrivateNetworkOnion(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Tor network (~10 s); skipped in -short mode")
	}
	n := testnet.Shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cc, err := torctl.Dial(ctx, "tcp", n.ControlAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() }) // removes the services too
	if err := cc.Authenticate(ctx, torctl.AuthOptions{CookiePath: n.CookiePath()}); err != nil {
		t.Fatal(err)
	}
	sub, err := cc.Subscribe(ctx, "HS_DESC")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	publish := func(req torctl.AddOnionRequest) string {
		t.Helper()
		req.Flags = append(req.Flags, torctl.FlagDiscardPK)
		res, err := cc.AddOnion(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := torctl.WaitHSDescUploaded(ctx, sub, res.ServiceID); err != nil {
			t.Fatal(err)
		}
		return res.ServiceID + ".onion"
	}
	open := publish(torctl.AddOnionRequest{Ports: []torctl.PortMapping{{Virtual: 80, Target: echoListener(t).Addr().String()}}})
	authKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	authed := publish(torctl.AddOnionRequest{
		Ports:        []torctl.PortMapping{{Virtual: 80, Target: echoListener(t).Addr().String()}},
		ClientAuthV3: []string{base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(authKey.PublicKey().Bytes())},
	})

	base := &socks.Dialer{ProxyAddr: n.SocksAddr(), Timeout: 30 * time.Second}
	// Right after the first upload a dial occasionally gets F0; tor then
	// does not ask the HSDirs again until NEWNYM (docs/spec-notes.md).
	dial := func(d *socks.Dialer, addr string) (net.Conn, error) {
		for {
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil || !socks.Retryable(err) || ctx.Err() != nil {
				return c, err
			}
			t.Logf("%s: %v; retrying", addr, err)
			var re *socks.ReplyError
			if errors.As(err, &re) && re.Code == socks.ReplyOnionDescNotFound {
				cc.Signal(ctx, "NEWNYM")
			}
			time.Sleep(min(socks.RetryAfter(err), time.Second))
		}
	}

	c, err := dial(base.ForPeer(open), open+":80")
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("through tor")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("through tor"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "through tor" {
		t.Fatalf("echo over the onion circuit: %q, %v", buf, err)
	}
	c.Close()

	var re *socks.ReplyError
	_, err = base.ForPeer(open).DialContext(ctx, "tcp", open+":81")
	if !errors.Is(err, socks.ErrOnionServiceUnreachable) || !errors.As(err, &re) || re.Code != socks.ReplyConnectionRefused {
		t.Errorf("unmapped port: %v; want ErrOnionServiceUnreachable with reply 0x05", err)
	}

	_, err = dial(base.ForPeer(authed), authed+":80")
	if !errors.Is(err, socks.ErrOnionAuth) || !errors.As(err, &re) || re.Code != socks.ReplyOnionAuthMissing || socks.Retryable(err) {
		t.Errorf("client auth missing: %v; want ErrOnionAuth with reply 0xF4", err)
	}
}
