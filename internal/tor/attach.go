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

// Attach connects to a running tor, authenticates (over TCP without a
// Password: SAFECOOKIE only, else torctl.ErrSafeCookieRequired), checks it
// is at least minVersion (else ErrTorTooOld, from GETINFO version) and
// waits for it to be bootstrapped. The tor is not owned: Stop only
// disconnects.
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
	// Over TCP anything may be listening at the address (tor not yet
	// started, another program on the port), and the COOKIE method would
	// hand it the raw cookie. So over TCP never send the raw cookie, and
	// unless the user configured a password insist on SAFECOOKIE, which the
	// peer can only complete by proving it knows the cookie. A unix
	// socket's permissions already say who is behind it.
	tcp := network == "tcp"
	opts := torctl.AuthOptions{CookiePath: cfg.CookiePath, Password: cfg.Password,
		RequireSafeCookie: tcp && cfg.Password == "", NoRawCookie: tcp}
	if err := c.Authenticate(ctx, opts); err != nil {
		c.Close()
		return nil, fmt.Errorf("tor: attach %s: %w", cfg.ControlAddr, err)
	}
	d := &Daemon{
		cfg:    Config{Progress: cfg.Progress, BootstrapTimeout: cfg.BootstrapTimeout},
		conn:   c,
		output: &tailBuffer{max: 1},
	}
	if err := d.loadVersion(ctx); err != nil {
		c.Close()
		return nil, err
	}
	if !d.version.AtLeast(minVersion.Major, minVersion.Minor, minVersion.Micro) {
		c.Close()
		return nil, tooOld("the tor at "+cfg.ControlAddr, d.version)
	}
	if err := d.refreshSocksAddr(ctx); err != nil {
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
