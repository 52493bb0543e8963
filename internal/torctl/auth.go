package torctl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Keys of the SAFECOOKIE HMACs (control-spec §3.24 AUTHCHALLENGE).
const (
	SafeCookieServerKey = "Tor safe cookie authentication server-to-controller hash"
	SafeCookieClientKey = "Tor safe cookie authentication controller-to-server hash"
)

// ErrAuth is wrapped by authentication failures that are not tor's reply
// (no usable method, bad cookie file, server hash mismatch).
var ErrAuth = errors.New("torctl: authentication failed")

// ErrSafeCookieRequired is returned (wrapped, and matching ErrAuth too)
// when AuthOptions.RequireSafeCookie is set and the control port does not
// offer SAFECOOKIE or no cookie file is known. Nothing secret was sent.
var ErrSafeCookieRequired = fmt.Errorf("%w: SAFECOOKIE required but not available", ErrAuth)

// ProtocolInfo is the parsed PROTOCOLINFO reply.
type ProtocolInfo struct {
	AuthMethods []string // e.g. COOKIE, SAFECOOKIE, HASHEDPASSWORD, NULL
	CookieFile  string
	TorVersion  string
}

// ProtocolInfo sends PROTOCOLINFO 1. Before authentication tor answers it
// only once per connection.
func (c *Conn) ProtocolInfo(ctx context.Context) (*ProtocolInfo, error) {
	r, err := c.Do(ctx, "PROTOCOLINFO 1")
	if err != nil {
		return nil, fmt.Errorf("torctl: protocolinfo: %w", err)
	}
	return parseProtocolInfo(r)
}

// parseProtocolInfo parses (control-spec §3.21):
//
//	250-PROTOCOLINFO 1
//	250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/run/tor/control.authcookie"
//	250-VERSION Tor="0.4.9.11"
//	250 OK
func parseProtocolInfo(r *Reply) (*ProtocolInfo, error) {
	var pi ProtocolInfo
	for _, l := range r.Lines {
		kw, rest, _ := strings.Cut(l.Text, " ")
		switch kw {
		case "AUTH":
			kv, _, err := KeyValues(rest)
			if err != nil {
				return nil, fmt.Errorf("torctl: protocolinfo: %w", err)
			}
			if m := kv["METHODS"]; m != "" {
				pi.AuthMethods = strings.Split(m, ",")
			}
			pi.CookieFile = kv["COOKIEFILE"]
		case "VERSION":
			kv, _, err := KeyValues(rest)
			if err != nil {
				return nil, fmt.Errorf("torctl: protocolinfo: %w", err)
			}
			pi.TorVersion = kv["Tor"]
		}
	}
	if pi.AuthMethods == nil {
		return nil, fmt.Errorf("torctl: protocolinfo: %w: no AUTH line", ErrMalformed)
	}
	return &pi, nil
}

// AuthOptions selects how to authenticate.
type AuthOptions struct {
	// CookiePath overrides the COOKIEFILE tor reports.
	CookiePath string
	// Password is used for HASHEDPASSWORD when no cookie method is offered.
	Password string
	// AllowNull permits the NULL method (no authentication at all), which
	// lets any local process control tor; off unless asked for.
	AllowNull bool
	// RequireSafeCookie accepts SAFECOOKIE only. Without it, a port that
	// offers just COOKIE would be sent the raw cookie, and whatever is
	// listening there (not necessarily tor) could replay it to the real
	// tor. Set it whenever tor is known to have CookieAuthentication 1
	// (tor then always offers SAFECOOKIE), e.g. for a tor we started.
	// Password, AllowNull and COOKIE are then never used.
	RequireSafeCookie bool
	// NoRawCookie never uses the COOKIE method (the raw cookie on the
	// wire) but still allows SAFECOOKIE and Password: for a TCP port with a
	// configured password, where whatever answers there must not be handed
	// the cookie.
	NoRawCookie bool
}

// Authenticate runs PROTOCOLINFO and authenticates with the best method tor
// offers: SAFECOOKIE (verifying tor's server hash, so a fake control port
// cannot learn the cookie), then COOKIE, then HASHEDPASSWORD, then NULL if
// AllowNull. With RequireSafeCookie only SAFECOOKIE is acceptable, and its
// absence is ErrSafeCookieRequired; NoRawCookie skips COOKIE.
func (c *Conn) Authenticate(ctx context.Context, opts AuthOptions) error {
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		return err
	}
	has := func(m string) bool { return slices.Contains(pi.AuthMethods, m) }
	cookiePath := opts.CookiePath
	if cookiePath == "" {
		cookiePath = pi.CookieFile
	}
	if opts.RequireSafeCookie && (!has("SAFECOOKIE") || cookiePath == "") {
		return fmt.Errorf("%w: the control port offers %v (cookie file %q); refusing to send a cookie or password to a port that cannot prove it knows the cookie: check that this is tor's control port and that tor has CookieAuthentication 1 (for a tor with HashedControlPassword, configure the password)",
			ErrSafeCookieRequired, pi.AuthMethods, cookiePath)
	}
	switch {
	case has("SAFECOOKIE") && cookiePath != "":
		cookie, err := readCookie(cookiePath)
		if err != nil {
			return err
		}
		return c.authSafeCookie(ctx, cookie)
	case has("COOKIE") && cookiePath != "" && !opts.NoRawCookie:
		cookie, err := readCookie(cookiePath)
		if err != nil {
			return err
		}
		return c.authenticate(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie))
	case has("HASHEDPASSWORD") && opts.Password != "":
		q, err := Quote(opts.Password)
		if err != nil {
			return fmt.Errorf("torctl: authenticate: %w", err)
		}
		return c.authenticate(ctx, "AUTHENTICATE "+q)
	case has("NULL") && opts.AllowNull:
		return c.authenticate(ctx, "AUTHENTICATE")
	}
	return fmt.Errorf("%w: no usable method among %v (cookie file %q, password set %t)",
		ErrAuth, pi.AuthMethods, cookiePath, opts.Password != "")
}

func readCookie(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read cookie: %w", ErrAuth, err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: cookie file %s has %d bytes, want 32", ErrAuth, path, len(b))
	}
	return b, nil
}

func (c *Conn) authenticate(ctx context.Context, line string) error {
	if _, err := c.Do(ctx, line); err != nil {
		return fmt.Errorf("torctl: authenticate: %w", err)
	}
	return nil
}

// authSafeCookie runs control-spec §3.24:
//
//	AUTHCHALLENGE SAFECOOKIE <client nonce hex>
//	250 AUTHCHALLENGE SERVERHASH=<hex> SERVERNONCE=<hex>
//
// SERVERHASH = HMAC-SHA256(server key, cookie | client nonce | server nonce)
// and we answer AUTHENTICATE with the same HMAC under the client key.
func (c *Conn) authSafeCookie(ctx context.Context, cookie []byte) error {
	clientNonce := make([]byte, 32)
	rand.Read(clientNonce)
	r, err := c.Do(ctx, "AUTHCHALLENGE SAFECOOKIE "+hex.EncodeToString(clientNonce))
	if err != nil {
		return fmt.Errorf("torctl: authchallenge: %w", err)
	}
	serverHash, serverNonce, err := parseAuthChallenge(r.Last())
	if err != nil {
		return err
	}
	want := SafeCookieHMAC(SafeCookieServerKey, cookie, clientNonce, serverNonce)
	if !hmac.Equal(want, serverHash) {
		return fmt.Errorf("%w: tor's SERVERHASH does not match the cookie (wrong cookie file or not the tor we think)", ErrAuth)
	}
	resp := SafeCookieHMAC(SafeCookieClientKey, cookie, clientNonce, serverNonce)
	return c.authenticate(ctx, "AUTHENTICATE "+hex.EncodeToString(resp))
}

func parseAuthChallenge(text string) (serverHash, serverNonce []byte, err error) {
	kw, rest, _ := strings.Cut(text, " ")
	if kw != "AUTHCHALLENGE" {
		return nil, nil, fmt.Errorf("torctl: authchallenge: %w: %q", ErrMalformed, truncate(text))
	}
	kv, _, err := KeyValues(rest)
	if err != nil {
		return nil, nil, fmt.Errorf("torctl: authchallenge: %w", err)
	}
	serverHash, err1 := hex.DecodeString(kv["SERVERHASH"])
	serverNonce, err2 := hex.DecodeString(kv["SERVERNONCE"])
	if err1 != nil || err2 != nil || len(serverHash) != 32 || len(serverNonce) != 32 {
		return nil, nil, fmt.Errorf("torctl: authchallenge: %w: bad SERVERHASH/SERVERNONCE", ErrMalformed)
	}
	return serverHash, serverNonce, nil
}

// SafeCookieHMAC computes HMAC-SHA256(key, cookie | clientNonce |
// serverNonce), the SAFECOOKIE hash in either direction. Exported for the
// fake control port in torctltest.
func SafeCookieHMAC(key string, cookie, clientNonce, serverNonce []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(cookie)
	m.Write(clientNonce)
	m.Write(serverNonce)
	return m.Sum(nil)
}
