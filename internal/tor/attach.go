package tor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/torctl"
)

// AttachConfig names an already-running tor, e.g. Debian's system tor with
// ControlSocket /run/tor/control.
type AttachConfig struct {
	// ControlAddr is "unix:/run/tor/control", a socket path starting
	// with "/", or "host:port".
	ControlAddr string
	// SocksAddr is tor's SOCKS listener; "" asks tor (GETINFO
	// net/listeners/socks).
	SocksAddr string
	// CookiePath overrides the cookie file tor reports; Password is for
	// HashedControlPassword.
	CookiePath string
	Password   string
	// Progress and BootstrapTimeout as in Config; Attach waits for
	// bootstrap too.
	Progress         func(BootstrapStatus)
	BootstrapTimeout time.Duration
}

// Attach connects to a running tor, authenticates and waits for it to be
// bootstrapped. The tor is not owned: Stop only disconnects.
func Attach(ctx context.Context, cfg AttachConfig) (*Daemon, error) {
	network, addr := "tcp", cfg.ControlAddr
	switch {
	case strings.HasPrefix(addr, "unix:"):
		network, addr = "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"):
		network = "unix"
	}
	if addr == "" {
		return nil, fmt.Errorf("%w: no control address", ErrBadConfig)
	}
	c, err := torctl.Dial(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tor: attach: %w", err)
	}
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookiePath: cfg.CookiePath, Password: cfg.Password}); err != nil {
		c.Close()
		return nil, fmt.Errorf("tor: attach: %w", err)
	}
	d := &Daemon{
		cfg:    Config{Progress: cfg.Progress, BootstrapTimeout: cfg.BootstrapTimeout},
		conn:   c,
		output: &tailBuffer{max: 1},
	}
	if err := d.loadInfo(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if err := d.WaitBootstrap(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if cfg.SocksAddr != "" {
		d.mu.Lock()
		d.socksAddr = cfg.SocksAddr
		d.mu.Unlock()
	}
	return d, nil
}
