package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The raw server's modes, the first byte a client sends.
const (
	modeEcho = 'e' // echo every byte back, the mode byte first
	modeSink = 'p' // read an 8-byte length n, then n bytes, reply one byte
)

// RawServer is the baseline's plain TCP server: an echo and a sink, with
// no protocol beyond a mode byte and a length. Put an onion service in
// front of it to measure raw tor.
type RawServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex // mu guards conns
	conns map[net.Conn]struct{}
}

// NewRawServer listens on 127.0.0.1:0 and serves until Close.
func NewRawServer() (*RawServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: raw server: %w", err)
	}
	s := &RawServer{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Addr is the listener's "127.0.0.1:port".
func (s *RawServer) Addr() string { return s.ln.Addr().String() }

// Close stops the listener and every connection, and waits for them.
func (s *RawServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *RawServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serveRaw(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

// serveRaw answers one raw-protocol client on c: a TCP connection here, a
// libp2p stream in rawProtocol.
func serveRaw(c io.ReadWriter) {
	var mode [1]byte
	if _, err := io.ReadFull(c, mode[:]); err != nil {
		return
	}
	switch mode[0] {
	case modeEcho:
		if _, err := c.Write(mode[:]); err == nil {
			io.Copy(c, c)
		}
	case modeSink:
		var n [8]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint64(n[:]))); err == nil {
			c.Write([]byte{1})
		}
	}
}

// errShortReply means the raw server closed before answering.
var errShortReply = errors.New("bench: raw server closed before replying")

// deadlineRW is a connection or stream whose blocked I/O a deadline ends.
type deadlineRW interface {
	io.ReadWriter
	SetDeadline(time.Time) error
}

// firstEcho sends the echo mode byte on c and waits for it to come back:
// the "first application byte" of a raw connection.
func firstEcho(ctx context.Context, c deadlineRW) error {
	defer context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })()
	if _, err := c.Write([]byte{modeEcho}); err != nil {
		return fmt.Errorf("bench: echo: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != modeEcho {
		return fmt.Errorf("bench: echo: %w", errors.Join(errShortReply, err))
	}
	return nil
}

// pushRaw writes n bytes to the sink on c and waits for its receipt.
func pushRaw(ctx context.Context, c deadlineRW, n int64) error {
	defer context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })()
	var hdr [9]byte
	hdr[0] = modeSink
	binary.BigEndian.PutUint64(hdr[1:], uint64(n))
	if _, err := c.Write(hdr[:]); err != nil {
		return fmt.Errorf("bench: push: %w", err)
	}
	if _, err := io.CopyN(c, zeroReader{}, n); err != nil {
		return fmt.Errorf("bench: push: %w", err)
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return fmt.Errorf("bench: push: %w", errors.Join(errShortReply, err))
	}
	return nil
}

// zeroReader is an endless stream of zero bytes. Tor encrypts every cell,
// so compressibility does not flatter the baseline.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
