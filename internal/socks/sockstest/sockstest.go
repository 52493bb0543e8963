// Package sockstest is a scriptable fake SOCKS5 server for fast tests of
// code that dials through tor: per destination it can answer any reply code
// (tor's 0xF0–0xF7 included), stall, hang up, echo, or forward to a real
// listener, and it records every request with its credentials so stream
// isolation can be asserted. It speaks the wire protocol only and does not
// import package socks, so any package's tests can use it.
//
// It is a stand-in for speed; tests that matter also run against real tor.
//
//	srv := sockstest.NewServer(t)
//	srv.Route(onionAddr, ln.Addr().String()) // CONNECT onionAddr:* → ln
//	srv.Reply(otherOnion, 0xF0)              // descriptor not found
//	d := &socks.Dialer{ProxyAddr: srv.Addr()}
package sockstest

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one CONNECT request the server received.
type Request struct {
	Host     string // domain name as sent, or the IP literal for ATYP 0x01/0x04
	Port     uint16
	AddrType byte   // 0x01 IPv4, 0x03 domain name, 0x04 IPv6
	Username string // RFC 1929 credentials; empty with method 0x00
	Password string
}

// Server is a fake SOCKS5 server on 127.0.0.1. Hosts without a rule are
// answered 0x04 (host unreachable). Methods are safe for concurrent use.
type Server struct {
	ln net.Listener
	wg sync.WaitGroup

	// mu guards the fields below.
	mu       sync.Mutex
	rules    map[string]rule
	requests []Request
	conns    map[net.Conn]struct{}
	closed   bool
}

type action int

const (
	actReply  action = iota // answer code; if code is 0x00, echo afterwards
	actRoute                // dial target, answer 0x00 and splice
	actStall                // read the request, never answer
	actHangup               // read the request, close without answering
)

type rule struct {
	act    action
	code   byte
	target string
	reset  bool // actHangup: RST instead of FIN
}

// NewServer starts a server on 127.0.0.1:0 and closes it in tb.Cleanup.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("sockstest: listen: %v", err)
	}
	s := &Server{ln: ln, rules: map[string]rule{}, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	tb.Cleanup(s.Close)
	return s
}

// Addr is the server's "127.0.0.1:port", for socks.Dialer.ProxyAddr.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Route forwards CONNECTs to host to target ("127.0.0.1:port"): the server
// dials target, answers 0x00 and copies bytes both ways (answering 0x05 if
// target refuses). host is a name ("x.onion", any port) or "x.onion:80"
// (that port only; checked first). Names match case-insensitively.
func (s *Server) Route(host, target string) { s.set(host, rule{act: actRoute, target: target}) }

// Reply answers CONNECTs to host with code. With code 0x00 the connection
// then echoes what it receives, a stand-in destination for data tests.
func (s *Server) Reply(host string, code byte) { s.set(host, rule{act: actReply, code: code}) }

// Stall reads CONNECTs to host and never answers, until the client hangs up
// or the server closes: tor waiting for a circuit, for timeout and
// cancellation tests.
func (s *Server) Stall(host string) { s.set(host, rule{act: actStall}) }

// Hangup reads CONNECTs to host and closes the connection without a reply
// (with reset, a TCP RST instead of a FIN): tor exiting or being killed
// while a dial is in progress.
func (s *Server) Hangup(host string, reset bool) {
	s.set(host, rule{act: actHangup, reset: reset})
}

// Requests returns a copy of the requests received so far, in order. A
// request is recorded before it is answered, so a dial that has returned is
// always visible.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Close stops the server, closes every connection (stalled ones included) and
// waits for its goroutines. It is called by tb.Cleanup; calling it earlier
// simulates tor stopping.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) set(host string, r rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules[strings.ToLower(host)] = r
}

func (s *Server) lookup(host string, port uint16) rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	host = strings.ToLower(host)
	if r, ok := s.rules[net.JoinHostPort(host, strconv.Itoa(int(port)))]; ok {
		return r
	}
	if r, ok := s.rules[host]; ok {
		return r
	}
	return rule{act: actReply, code: 0x04}
}

// track registers c so Close can interrupt it; false if already closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(c)
		}()
	}
}

var errProtocol = errors.New("sockstest: protocol error")

func (s *Server) handle(c net.Conn) {
	req, err := readRequest(c)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	r := s.lookup(req.Host, req.Port)
	switch r.act {
	case actStall:
		io.Copy(io.Discard, c)
	case actHangup:
		if tc, ok := c.(*net.TCPConn); ok && r.reset {
			tc.SetLinger(0) // Close sends RST
		}
	case actReply:
		if writeReply(c, r.code) != nil || r.code != 0 {
			return
		}
		io.Copy(c, c)
	case actRoute:
		s.forward(c, r.target)
	}
}

func (s *Server) forward(c net.Conn, target string) {
	t, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		writeReply(c, 0x05)
		return
	}
	if !s.track(t) {
		return
	}
	defer s.untrack(t)
	if writeReply(c, 0x00) != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(t, c)
		closeWrite(t)
	}()
	io.Copy(c, t)
	closeWrite(c)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// readRequest runs the server side of the greeting, the optional RFC 1929
// sub-negotiation and reads the CONNECT request. It answers protocol
// violations itself (0xFF method, 0x07, 0x08) and returns an error.
func readRequest(c net.Conn) (Request, error) {
	var req Request
	var b [256]byte
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return req, err
	}
	if b[0] != 0x05 {
		return req, errProtocol
	}
	methods := b[2 : 2+int(b[1])]
	if _, err := io.ReadFull(c, methods); err != nil {
		return req, err
	}
	method := byte(0xFF)
	for _, m := range methods {
		if m == 0x02 || (m == 0x00 && method == 0xFF) {
			method = m
		}
	}
	if _, err := c.Write([]byte{0x05, method}); err != nil || method == 0xFF {
		return req, errProtocol
	}
	if method == 0x02 {
		var err error
		if req.Username, req.Password, err = readUserPass(c); err != nil {
			return req, err
		}
		if _, err := c.Write([]byte{0x01, 0x00}); err != nil {
			return req, err
		}
	}
	if _, err := io.ReadFull(c, b[:4]); err != nil {
		return req, err
	}
	if b[0] != 0x05 {
		return req, errProtocol
	}
	if b[1] != 0x01 {
		writeReply(c, 0x07)
		return req, errProtocol
	}
	req.AddrType = b[3]
	switch req.AddrType {
	case 0x01, 0x04:
		n := 4
		if req.AddrType == 0x04 {
			n = 16
		}
		if _, err := io.ReadFull(c, b[:n]); err != nil {
			return req, err
		}
		ip, _ := netip.AddrFromSlice(b[:n])
		req.Host = ip.String()
	case 0x03:
		if _, err := io.ReadFull(c, b[:1]); err != nil {
			return req, err
		}
		n := int(b[0])
		if _, err := io.ReadFull(c, b[:n]); err != nil {
			return req, err
		}
		req.Host = string(b[:n])
	default:
		writeReply(c, 0x08)
		return req, errProtocol
	}
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return req, err
	}
	req.Port = binary.BigEndian.Uint16(b[:2])
	return req, nil
}

func readUserPass(c net.Conn) (user, pass string, err error) {
	var b [256]byte
	if _, err := io.ReadFull(c, b[:2]); err != nil {
		return "", "", err
	}
	if b[0] != 0x01 {
		return "", "", errProtocol
	}
	field := func() (string, error) {
		if _, err := io.ReadFull(c, b[:1]); err != nil {
			return "", err
		}
		n := int(b[0])
		_, err := io.ReadFull(c, b[:n])
		return string(b[:n]), err
	}
	// ULEN was the second byte read above.
	n := int(b[1])
	if _, err := io.ReadFull(c, b[:n]); err != nil {
		return "", "", err
	}
	user = string(b[:n])
	pass, err = field()
	return user, pass, err
}

// writeReply sends a reply the way tor does: bound address 0.0.0.0:0.
func writeReply(c net.Conn, code byte) error {
	_, err := c.Write([]byte{0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0})
	return err
}
