package statuspage

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
)

// fakeAgent answers the page's calls without an agent: these tests are
// about the page's own checks (the real agent is in internal/e2e).
type fakeAgent struct{ synced int }

func (f *fakeAgent) Status(context.Context) (localapi.Status, error) {
	return localapi.Status{OnionAddress: "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz234567.onion", BootstrapProgress: 100, Published: true}, nil
}
func (f *fakeAgent) Peers(context.Context) ([]localapi.Peer, error) { return nil, nil }
func (f *fakeAgent) Connect(context.Context, string) (localapi.ConnectResult, error) {
	return localapi.ConnectResult{}, nil
}
func (f *fakeAgent) Sync(context.Context, string) ([]localapi.SyncResult, error) {
	f.synced++
	return nil, nil
}
func (f *fakeAgent) Advertise(context.Context, []string) (localapi.Advertisement, error) {
	return localapi.Advertisement{}, nil
}
func (f *fakeAgent) Discover(context.Context, string) (localapi.DiscoverResult, error) {
	return localapi.DiscoverResult{}, nil
}

// serve starts the page on loopback and returns it, its base URL and
// the agent behind it.
func serve(t *testing.T) (*Server, string, *fakeAgent) {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fa := &fakeAgent{}
	s, err := New(ln, fa, &Dir{Path: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, "http://" + ln.Addr().String(), fa
}

func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login redeems the token and returns a client holding the cookie.
func login(t *testing.T, s *Server) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := noRedirect(jar)
	resp, err := c.Get(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("first load with the token: %s, Location %q: want 303 to /", resp.Status, resp.Header.Get("Location"))
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{s.cookie + "=", "HttpOnly", "SameSite=Strict"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	return c
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string, host string) *http.Response {
	t.Helper()
	var body *strings.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{}`)
	} else {
		body = strings.NewReader("")
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestTokenOnceThenCookie(t *testing.T) {
	s, base, _ := serve(t)
	c := login(t, s)
	if r := do(t, c, "GET", base+"/api/state", nil, ""); r.StatusCode != http.StatusOK {
		t.Errorf("with the cookie: %s, want 200", r.Status)
	}
	if r := do(t, c, "GET", base+"/", nil, ""); r.StatusCode != http.StatusOK {
		t.Errorf("page with the cookie: %s, want 200", r.Status)
	} else if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q: want default-src 'self'", csp)
	}
	// The token is spent: a second browser (no cookie) cannot use it.
	jar, _ := cookiejar.New(nil)
	if r := do(t, noRedirect(jar), "GET", s.URL(), nil, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("second use of the token without the cookie: %s, want 401", r.Status)
	}
}

func TestRefused(t *testing.T) {
	s, base, fa := serve(t)
	c := login(t, s)
	u, _ := url.Parse(base)
	origin := "http://" + u.Host
	jar, _ := cookiejar.New(nil)
	anon := noRedirect(jar)
	tests := []struct {
		name   string
		client *http.Client
		method string
		path   string
		hdr    map[string]string
		host   string
		want   int
	}{
		{"no token or cookie: page", anon, "GET", "/", nil, "", http.StatusUnauthorized},
		{"no token or cookie: state", anon, "GET", "/api/state", nil, "", http.StatusUnauthorized},
		{"no token or cookie: qr", anon, "GET", "/qr.svg", nil, "", http.StatusUnauthorized},
		{"no token or cookie: sync", anon, "POST", "/api/sync", map[string]string{"Origin": origin}, "", http.StatusUnauthorized},
		{"wrong token", anon, "GET", "/?token=" + strings.Repeat("0", 64), nil, "", http.StatusUnauthorized},
		{"foreign Host (DNS rebinding)", c, "GET", "/api/state", nil, "evil.example:" + u.Port(), http.StatusForbidden},
		{"foreign Host, other port", c, "GET", "/", nil, "127.0.0.1:1", http.StatusForbidden},
		{"foreign Origin", c, "POST", "/api/sync", map[string]string{"Origin": "http://evil.example"}, "", http.StatusForbidden},
		{"no Origin on a POST", c, "POST", "/api/sync", nil, "", http.StatusForbidden},
		{"Origin of another loopback port", c, "POST", "/api/sync", map[string]string{"Origin": "http://127.0.0.1:1"}, "", http.StatusForbidden},
		{"same-site (another port) fetch", c, "POST", "/api/sync", map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-site"}, "", http.StatusForbidden},
		{"cross-site fetch", c, "POST", "/api/sync", map[string]string{"Origin": origin, "Sec-Fetch-Site": "cross-site"}, "", http.StatusForbidden},
		{"same-origin POST", c, "POST", "/api/sync", map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"}, "", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := fa.synced
			r := do(t, tc.client, tc.method, base+tc.path, tc.hdr, tc.host)
			if r.StatusCode != tc.want {
				t.Errorf("%s %s: %s, want %d", tc.method, tc.path, r.Status, tc.want)
			}
			if tc.want != http.StatusOK && fa.synced != before {
				t.Errorf("a refused request reached the agent")
			}
		})
	}
	// The refused token use did not spend it for nobody: the real one
	// still was spent by login, and the anonymous client still has nothing.
	if r := do(t, anon, "GET", base+"/api/state", nil, ""); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous after the refusals: %s, want 401", r.Status)
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:0", "example.com:0"} {
		if ln, err := Listen(addr); err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded: want refusal of a non-loopback address", addr)
		}
	}
	ln, err := Listen("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("localhost listened on %v", ip)
	}
}

func TestQRSVG(t *testing.T) {
	svg, err := qrSVG("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz234567.onion")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "h1v1h-1z") < 100 {
		t.Errorf("qr svg looks empty: %.200s", svg)
	}
}

// TestLaunchFile: the file `mmogit ui` opens is private and sends the
// browser to the token URL; a token redeemed from it (a cross-site
// navigation) is answered with a same-origin hop to the page instead of a
// redirect, on which the Strict cookie would not be sent.
func TestLaunchFile(t *testing.T) {
	s, _, _ := serve(t)
	dir := t.TempDir()
	path, err := s.WriteLaunchFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || filepath.Dir(path) != dir {
		t.Fatalf("launch file %s: %v, %v: want 0600 in %s", path, fi, err, dir)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `content="0;url=`+html.EscapeString(s.URL())+`"`) {
		t.Errorf("launch file does not send the browser to %s:\n%s", s.URL(), b)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL(), nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	jar, _ := cookiejar.New(nil)
	resp, err := noRedirect(jar).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Set-Cookie"), s.cookie+"=") || !strings.Contains(string(body), `content="0;url=/"`) {
		t.Errorf("token from the launch file: %s, Set-Cookie %q, body %q: want 200, the cookie and a hop to /", resp.Status, resp.Header.Get("Set-Cookie"), body)
	}
}
