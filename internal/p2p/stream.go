package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

type noIdentifyKey struct{}

// WithoutIdentifyWait marks ctx so that Host.Connect returns as soon as the
// connection is up (Noise and yamux done) instead of also waiting for the
// identify exchange, which libp2p's Connect does and which costs one more
// circuit round trip on an onion link. Identify still runs in the
// background. Use it where the next step is a stream with a known protocol
// (OpenStream), not where protocols or addresses learnt by identify are
// needed at once.
func WithoutIdentifyWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, noIdentifyKey{}, true)
}

func noIdentifyWait(ctx context.Context) bool {
	v, _ := ctx.Value(noIdentifyKey{}).(bool)
	return v
}

// ErrProtocolNotSupported: the peer does not serve the protocol asked for
// (an older peer); it is seen on the stream's first read.
var ErrProtocolNotSupported = errors.New("p2p: peer does not support the protocol")

// OpenStream connects to pi if needed (without waiting for identify) and
// opens a stream speaking proto at once: the multistream proposal travels
// with the first bytes written and its answer is read with the first bytes
// read, so neither identify nor the protocol negotiation costs a round
// trip. If the peer turns out not to speak proto, the first read fails
// with an error wrapping ErrProtocolNotSupported. Both ends are
// authenticated by the connection's Noise handshake before any byte moves.
func (hst *Host) OpenStream(ctx context.Context, pi peer.AddrInfo, proto protocol.ID) (network.Stream, error) {
	if !hst.connected(pi.ID) {
		if err := hst.Connect(WithoutIdentifyWait(ctx), pi); err != nil {
			return nil, err
		}
	}
	s, err := hst.h.Network().NewStream(network.WithNoDial(ctx, "connected"), pi.ID)
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", proto, pi.ID, err)
	}
	if err := s.SetProtocol(proto); err != nil {
		s.Reset()
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", proto, pi.ID, err)
	}
	return &lazyStream{Stream: s, rw: msmux.NewMSSelect(s, proto)}, nil
}

// lazyStream is a stream whose multistream negotiation rides on its first
// read and write (as libp2p's own streamWrapper, which NewStream only uses
// after identify).
type lazyStream struct {
	network.Stream
	rw       io.ReadWriteCloser
	answered bool // a byte of the protocol's own arrived: negotiated
}

func (s *lazyStream) Read(b []byte) (int, error) {
	n, err := s.rw.Read(b)
	if err != nil && !s.answered && notSupported(err) {
		err = fmt.Errorf("%w: %w", ErrProtocolNotSupported, err)
	}
	if n > 0 {
		s.answered = true
	}
	return n, err
}

// notSupported: the peer answered "na", or reset the stream as libp2p
// does when it cannot negotiate (the reset may overtake the "na").
func notSupported(err error) bool {
	var ns msmux.ErrNotSupported[protocol.ID]
	var se *network.StreamError
	return errors.As(err, &ns) ||
		errors.As(err, &se) && se.Remote && se.ErrorCode == network.StreamProtocolNegotiationFailed
}

func (s *lazyStream) Write(b []byte) (int, error) { return s.rw.Write(b) }

func (s *lazyStream) Close() error {
	// Close reads the pending multistream answer; never block on it long.
	_ = s.Stream.SetReadDeadline(time.Now().Add(10 * time.Second))
	return s.rw.Close()
}

func (s *lazyStream) CloseWrite() error {
	if f, ok := s.rw.(interface{ Flush() error }); ok {
		_ = f.Flush()
	}
	return s.Stream.CloseWrite()
}
