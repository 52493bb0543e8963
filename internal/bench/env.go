package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/mmogit/mmogit/internal/tor"
)

// rawVirtualPort is the raw server's port on its onion address.
const rawVirtualPort = 80

// env is what every onion measurement shares: the private network, whose
// client tor dials (ours and the baseline alike), and one more tor joined
// to it that hosts the onion services being dialed (ours and the
// baseline's), so both sides of every comparison cross the same two tors.
type env struct {
	dir string
	// net is the private network every tor joins; own is set when the env
	// started it (and closes it), nil when it runs on an existing one.
	net testnet.Info
	own *testnet.Network
	srv *tor.Daemon
	raw *RawServer
	// rawOnion is the raw server's onion "host:port".
	rawOnion string
	// bareStartup is tor.Start → first HS_DESC UPLOADED of the raw
	// server's service: the baseline of startup_published.
	bareStartup time.Duration
}

// clientSocks is the SOCKS port every onion dial goes through.
func (e *env) clientSocks() string { return e.net.Socks }

// startEnv brings up the network (unless nw describes a running one), the
// serving tor and the raw server. On error everything started is stopped.
func startEnv(ctx context.Context, dir string, nw *testnet.Info, profile testnet.Profile, progress func(string, ...any)) (_ *env, err error) {
	e := &env{dir: dir}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if nw != nil {
		e.net = *nw
	} else {
		t0 := time.Now()
		if e.own, err = testnet.Start(ctx, testnet.Options{Dir: filepath.Join(dir, "testnet"), Profile: profile}); err != nil {
			return nil, err
		}
		e.net = e.own.Info()
		progress("private Tor network (profile %s) up in %.1fs", profile, time.Since(t0).Seconds())
	}
	if e.raw, err = NewRawServer(); err != nil {
		return nil, err
	}
	t1 := time.Now()
	if e.srv, err = tor.Start(ctx, tor.Config{DataDir: filepath.Join(dir, "srv-tor"), ExtraTorrc: e.net.ClientTorrc}); err != nil {
		return nil, err
	}
	host, err := publish(ctx, e.srv, newKey(), rawVirtualPort, e.raw.Addr())
	if err != nil {
		return nil, err
	}
	e.bareStartup = time.Since(t1)
	e.rawOnion = net.JoinHostPort(host, fmt.Sprint(rawVirtualPort))
	progress("bare tor joined and published a service in %.1fs", e.bareStartup.Seconds())
	return e, nil
}

// close stops everything startEnv started.
func (e *env) close() {
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.srv.Stop(ctx)
		cancel()
	}
	if e.raw != nil {
		e.raw.Close()
	}
	if e.own != nil {
		e.own.Close()
	}
}

// publish adds an onion service for key on d and waits for its first
// descriptor upload; it returns the service's hostname.
func publish(ctx context.Context, d *tor.Daemon, key ed25519.PrivateKey, port int, target string) (string, error) {
	svc, err := d.Publish(ctx, tor.ServiceConfig{Key: key, VirtualPort: port, Target: target})
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	if err := svc.WaitPublished(ctx); err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	return svc.Hostname(), nil
}

func newKey() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(rand.Reader) // crypto/rand never fails on Linux
	return k
}

// freshIsolation is a SOCKS credential never used before: tor keeps the
// stream off every existing circuit, so a dial builds a new rendezvous.
func freshIsolation() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dialRaw opens a raw SOCKS stream with fresh isolation to the raw server's
// onion service.
func (e *env) dialRaw(ctx context.Context) (net.Conn, error) {
	d := &socks.Dialer{ProxyAddr: e.clientSocks(), Isolation: freshIsolation(), Timeout: 60 * time.Second}
	return d.DialContext(ctx, "tcp", e.rawOnion)
}

// dialRawOnion is dialRaw as a dialFunc.
func (e *env) dialRawOnion(ctx context.Context) (rawConn, error) { return e.dialRaw(ctx) }

// dialTCP connects straight to the raw server on loopback.
func (e *env) dialTCP(ctx context.Context) (rawConn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", e.raw.Addr())
}

// retryUnreachable calls dial until it stops failing with an unreachable
// onion service: right after its first upload a client may still miss a
// descriptor (F0). Only warm-up dials use it; timed ones must not retry.
func retryUnreachable(ctx context.Context, dial func() error) error {
	for {
		err := dial()
		if err == nil || !errors.Is(err, socks.ErrOnionServiceUnreachable) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
