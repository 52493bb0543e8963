// Package torctltest is a fake Tor control port for fast unit tests of code
// that uses torctl. It listens on 127.0.0.1, implements PROTOCOLINFO and the
// SAFECOOKIE, COOKIE, HASHEDPASSWORD and NULL methods (by default it offers
// COOKIE,SAFECOOKIE like a tor with CookieAuthentication 1; SetAuthMethods
// changes that), answers GETINFO from a table, records every command and lets a test script replies and push
// asynchronous events. Tests that need real tor behaviour use the real tor.
package torctltest

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/mmogit/mmogit/internal/torctl"
)

// Handler answers one command; args is the command line after the verb. It
// returns the reply lines without CRLF, e.g. {"250-a=b", "250 OK"}.
type Handler func(args string) []string

// Server is a fake control port. Its zero value is not usable; call
// NewServer.
type Server struct {
	// CookiePath is the 32-byte authentication cookie file.
	CookiePath string
	cookie     []byte
	ln         net.Listener

	// mu guards the fields below.
	mu       sync.Mutex
	commands []string
	handlers map[string]Handler
	info     map[string]string
	conns    map[*conn]struct{}
	badHash  bool
	methods  []string
	password string
}

type conn struct {
	nc     net.Conn
	wmu    sync.Mutex
	authed bool
}

// NewServer starts a fake control port on 127.0.0.1:0, closed by t.Cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		CookiePath: filepath.Join(t.TempDir(), "control_auth_cookie"),
		cookie:     make([]byte, 32),
		handlers:   make(map[string]Handler),
		info: map[string]string{
			"version":                "0.4.9.11",
			"status/bootstrap-phase": `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`,
		},
		conns:   make(map[*conn]struct{}),
		methods: []string{"COOKIE", "SAFECOOKIE"},
	}
	rand.Read(s.cookie)
	if err := os.WriteFile(s.CookiePath, s.cookie, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	t.Cleanup(s.Close)
	go s.serve()
	return s
}

// Addr is the "host:port" to Dial.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and drops every connection, like tor exiting.
func (s *Server) Close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// Handle scripts the reply to a command verb (case-insensitive), replacing
// the built-in behaviour.
func (s *Server) Handle(verb string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[strings.ToUpper(verb)] = h
}

// SetInfo sets the value GETINFO returns for key.
func (s *Server) SetInfo(key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.info[key] = value
}

// SetAuthMethods sets the methods PROTOCOLINFO offers, and the only ones
// AUTHENTICATE accepts: any of "SAFECOOKIE", "COOKIE", "HASHEDPASSWORD"
// (with the password given to SetPassword), "NULL".
func (s *Server) SetAuthMethods(methods ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods = append([]string(nil), methods...)
}

// SetPassword sets the password HASHEDPASSWORD accepts.
func (s *Server) SetPassword(pw string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.password = pw
}

func (s *Server) offers(m string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.methods, m)
}

// SendBadServerHash makes AUTHCHALLENGE answer with a wrong SERVERHASH, as
// a control port that does not know the cookie would.
func (s *Server) SendBadServerHash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badHash = true
}

// Commands returns every command line received so far, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Emit sends an asynchronous event to every authenticated connection. Each
// line is one reply line ("650 HS_DESC UPLOADED ..."); multi-line events
// pass several lines.
func (s *Server) Emit(lines ...string) {
	s.mu.Lock()
	var cs []*conn
	for c := range s.conns {
		if c.authed {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.write(lines)
	}
}

func (c *conn) write(lines []string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(l + "\r\n")
	}
	_, err := c.nc.Write([]byte(sb.String()))
	return err
}

func (s *Server) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{nc: nc}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

func (s *Server) serveConn(c *conn) {
	defer func() {
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	br := bufio.NewReader(c.nc)
	var clientNonce, serverNonce []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, args, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.commands = append(s.commands, line)
		h := s.handlers[verb]
		authed := c.authed
		s.mu.Unlock()

		var reply []string
		closeAfter := false
		switch {
		case h != nil && (authed || verb == "PROTOCOLINFO"):
			reply = h(args)
		case verb == "PROTOCOLINFO":
			s.mu.Lock()
			auth := "250-AUTH METHODS=" + strings.Join(s.methods, ",")
			s.mu.Unlock()
			if s.offers("COOKIE") || s.offers("SAFECOOKIE") {
				auth += " COOKIEFILE=" + quote(s.CookiePath)
			}
			reply = []string{
				"250-PROTOCOLINFO 1",
				auth,
				`250-VERSION Tor="0.4.9.11"`,
				"250 OK",
			}
		case verb == "AUTHCHALLENGE":
			f := strings.Fields(args)
			if !s.offers("SAFECOOKIE") {
				reply = []string{"513 SAFECOOKIE authentication is not supported"}
				break
			}
			if len(f) != 2 || f[0] != "SAFECOOKIE" {
				reply = []string{"513 Invalid argument"}
				break
			}
			clientNonce, err = hex.DecodeString(f[1])
			if err != nil {
				reply = []string{"513 Invalid base16 client nonce"}
				break
			}
			serverNonce = make([]byte, 32)
			rand.Read(serverNonce)
			hash := torctl.SafeCookieHMAC(torctl.SafeCookieServerKey, s.cookie, clientNonce, serverNonce)
			s.mu.Lock()
			if s.badHash {
				hash[0] ^= 1
			}
			s.mu.Unlock()
			reply = []string{"250 AUTHCHALLENGE SERVERHASH=" + hex.EncodeToString(hash) +
				" SERVERNONCE=" + hex.EncodeToString(serverNonce)}
		case verb == "AUTHENTICATE":
			ok := s.checkAuth(strings.TrimSpace(args), clientNonce, serverNonce)
			if ok {
				s.mu.Lock()
				c.authed = true
				s.mu.Unlock()
				reply = []string{"250 OK"}
			} else {
				reply = []string{"515 Authentication failed: Safe cookie response did not match expected value."}
				closeAfter = true
			}
		case !authed:
			reply = []string{"514 Authentication required."}
			closeAfter = true
		case verb == "GETINFO":
			reply = s.getInfo(strings.Fields(args))
		default:
			reply = []string{"250 OK"}
		}
		if err := c.write(reply); err != nil || closeAfter {
			return
		}
	}
}

// checkAuth checks an AUTHENTICATE argument against the offered methods:
// nothing (NULL), a quoted password (HASHEDPASSWORD), or hex: the
// SAFECOOKIE client hash after an AUTHCHALLENGE, else the raw cookie.
func (s *Server) checkAuth(arg string, clientNonce, serverNonce []byte) bool {
	switch {
	case arg == "":
		return s.offers("NULL")
	case strings.HasPrefix(arg, `"`):
		pw, rest, err := torctl.Unquote(arg)
		s.mu.Lock()
		want := s.password
		s.mu.Unlock()
		return err == nil && rest == "" && s.offers("HASHEDPASSWORD") && want != "" && pw == want
	}
	got, err := hex.DecodeString(arg)
	if err != nil {
		return false
	}
	if serverNonce != nil {
		want := torctl.SafeCookieHMAC(torctl.SafeCookieClientKey, s.cookie, clientNonce, serverNonce)
		return hmac.Equal(got, want)
	}
	return s.offers("COOKIE") && hmac.Equal(got, s.cookie)
}

func (s *Server) getInfo(keys []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range keys {
		v, ok := s.info[k]
		if !ok {
			return []string{`552 Unrecognized key "` + k + `"`}
		}
		if strings.Contains(v, "\n") {
			out = append(out, "250+"+k+"=")
			for _, l := range strings.Split(v, "\n") {
				if strings.HasPrefix(l, ".") {
					l = "." + l
				}
				out = append(out, l)
			}
			out = append(out, ".")
			continue
		}
		out = append(out, "250-"+k+"="+v)
	}
	return append(out, "250 OK")
}

func quote(s string) string {
	q, err := torctl.Quote(s)
	if err != nil {
		panic(err)
	}
	return q
}
