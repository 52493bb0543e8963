// Package statuspage is the local web page of `mmogit ui`: the agent's
// state (tor bootstrap, onion service, peers, discovery, memories) and
// the actions that matter (connect, sync, advertise, trust, invite).
//
// It runs in the `mmogit ui` process, not in the agent. It reaches the
// agent only through the agent's local API (the unix socket the CLI uses,
// see package localapi), and the config directory only through the same
// packages the CLI uses (memory, trust, invite). So the page can make the
// agent do nothing the CLI could not, and in tor mode the agent's transport
// policy applies to every connection the page asks for.
//
// Who can use the page: it listens on loopback only. The URL printed by
// `mmogit ui` carries a one-time token (32 random bytes); its first use
// sets an HttpOnly, SameSite=Strict session cookie (another 32 random
// bytes) and redirects to the clean URL, and every request needs that
// cookie. The Host header must name the listen address (so a DNS
// rebinding page cannot talk to it), and requests that change anything
// (every non-GET) need a same-origin Origin header and no cross-site
// Sec-Fetch-Site. Every asset is embedded in the binary; the Content
// Security Policy allows nothing but this origin, so the page loads
// nothing from the network. The page holds no key: the seed stays in the
// config directory, read by the memory reader of this process only to
// decrypt what is addressed to this identity.
package statuspage

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
)

//go:embed assets
var assets embed.FS

// CookiePrefix starts the name of the session cookie set by the first
// load with the token; the port follows, because browsers share cookies
// between the ports of one host and two `mmogit ui` (two config dirs)
// must not log each other out.
const CookiePrefix = "mmogit_ui_"

// Agent is the part of the agent's local API the page uses;
// *localapi.Client implements it.
type Agent interface {
	Status(ctx context.Context) (localapi.Status, error)
	Peers(ctx context.Context) ([]localapi.Peer, error)
	Connect(ctx context.Context, target string) (localapi.ConnectResult, error)
	Sync(ctx context.Context, peer string) ([]localapi.SyncResult, error)
	Advertise(ctx context.Context, services []string) (localapi.Advertisement, error)
	Discover(ctx context.Context, service string) (localapi.DiscoverResult, error)
}

// Local is what the page reads and changes in the config directory
// itself, as the CLI does (`show`, `trust`, `invite`); *Dir implements it.
type Local interface {
	Memories(ctx context.Context, query string, limit int) (MemoryList, error)
	Trust(ctx context.Context, peer string, read, write bool) (TrustEntry, error)
	Untrust(ctx context.Context, peer string) (TrustEntry, error)
	Invite(ctx context.Context, read, write bool, ttl time.Duration) (Invite, error)
}

// ErrNotLoopback is returned by Listen for an address that is not on
// loopback.
var ErrNotLoopback = errors.New("statuspage: the page listens on loopback only (127.0.0.1, ::1 or localhost)")

// Listen listens on addr, which must be a loopback address.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("statuspage: --listen %q: %w", addr, err)
	}
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%w: --listen %q", ErrNotLoopback, addr)
		}
	}
	if host == "localhost" {
		// Resolve to the loopback address ourselves: "localhost" in
		// /etc/hosts could name anything.
		addr = net.JoinHostPort("127.0.0.1", addr[len(host)+1:])
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("statuspage: %w", err)
	}
	return ln, nil
}

// Server serves the page. Create it with New.
type Server struct {
	agent  Agent
	local  Local
	log    *slog.Logger
	self   string          // host:port of the listener
	cookie string          // the session cookie's name
	hosts  map[string]bool // acceptable Host headers

	token     string // one-time, in the printed URL
	session   string // the cookie's value
	mu        sync.Mutex
	tokenUsed bool

	disc *discoveries
}

// New returns a server for a page served on ln's address.
func New(ln net.Listener, agent Agent, local Local, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return nil, fmt.Errorf("%w: %s", ErrNotLoopback, ln.Addr())
	}
	port := strconv.Itoa(tcp.Port)
	self := net.JoinHostPort(tcp.IP.String(), port)
	s := &Server{agent: agent, local: local, log: log, self: self, cookie: CookiePrefix + port,
		hosts: map[string]bool{
			self:                                true,
			net.JoinHostPort("localhost", port): true,
		},
		token: randomHex(), session: randomHex(),
	}
	s.disc = newDiscoveries(agent, log)
	return s, nil
}

func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return hex.EncodeToString(b)
}

// URL is the address to open: the page with the one-time token.
func (s *Server) URL() string {
	return "http://" + s.self + "/?token=" + url.QueryEscape(s.token)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.disc.run(ctx)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler is the whole page with every check in front of it.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /app.js", files)
	mux.Handle("GET /style.css", files)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.HandleFunc("GET /qr.svg", s.qr)
	for pattern, h := range s.api() {
		mux.Handle(pattern, h)
	}
	return s.guard(mux)
}

// guard applies the security checks, in this order: Host (DNS
// rebinding), then the token or session cookie, then, for requests that
// change something, Origin and Sec-Fetch-Site (cross-site requests).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if !s.hosts[r.Host] {
			s.log.Warn("status page: refused a request for a foreign Host (DNS rebinding?)", "host", r.Host)
			http.Error(w, "forbidden: Host "+strconv.Quote(r.Host)+" is not this page's address", http.StatusForbidden)
			return
		}
		if tok := r.URL.Query().Get("token"); tok != "" && r.Method == http.MethodGet && r.URL.Path == "/" {
			s.redeem(w, r, tok)
			return
		}
		c, err := r.Cookie(s.cookie)
		if err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.session)) != 1 {
			http.Error(w, "unauthorized: open the URL that `mmogit ui` printed (it carries a one-time token)", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if o := r.Header.Get("Origin"); o != "http://"+r.Host {
				s.log.Warn("status page: refused a cross-origin request", "origin", o, "path", r.URL.Path)
				http.Error(w, "forbidden: Origin "+strconv.Quote(o)+" is not this page", http.StatusForbidden)
				return
			}
			if sf := r.Header.Get("Sec-Fetch-Site"); sf != "" && sf != "same-origin" {
				http.Error(w, "forbidden: Sec-Fetch-Site "+strconv.Quote(sf), http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// redeem turns the one-time token into the session cookie, once, and
// redirects to the clean URL so the token does not stay in the address bar.
func (s *Server) redeem(w http.ResponseWriter, r *http.Request, tok string) {
	s.mu.Lock()
	ok := !s.tokenUsed && subtle.ConstantTimeCompare([]byte(tok), []byte(s.token)) == 1
	if ok {
		s.tokenUsed = true
	}
	s.mu.Unlock()
	if !ok {
		// A browser that already has the cookie (a reload of the
		// printed URL) just goes on to the page.
		if c, err := r.Cookie(s.cookie); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.session)) == 1 {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		http.Error(w, "unauthorized: this token is wrong or was already used; restart `mmogit ui` for a new URL", http.StatusUnauthorized)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.cookie, Value: s.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		// Opened from the launch file (a file:// page): a redirect would
		// continue that cross-site navigation, on which the browser does
		// not send a SameSite=Strict cookie. A navigation this page starts
		// itself is same-origin and carries it.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, `<!doctype html><meta http-equiv="refresh" content="0;url=/"><title>mmogit</title><a href="/">open the status page</a>`)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// WriteLaunchFile writes a page into dir (a private directory, e.g. the
// config dir) that sends the browser to [Server.URL], and returns its
// path. `mmogit ui` opens this file rather than the URL itself, so the
// one-time token never appears on a command line (xdg-open's and the
// browser's), where other local users could read it from /proc and
// redeem it first. The file is 0600; remove it when the page stops.
func (s *Server) WriteLaunchFile(dir string) (string, error) {
	f, err := os.CreateTemp(dir, "ui-open-*.html") // 0600
	if err != nil {
		return "", fmt.Errorf("statuspage: launch file: %w", err)
	}
	u := html.EscapeString(s.URL())
	_, err = fmt.Fprintf(f, "<!doctype html>\n<meta http-equiv=\"refresh\" content=\"0;url=%s\">\n<title>mmogit status page</title>\n<a href=\"%s\">open the mmogit status page</a>\n", u, u)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("statuspage: launch file: %w", err)
	}
	return f.Name(), nil
}
