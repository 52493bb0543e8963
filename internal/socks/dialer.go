package socks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultTimeout bounds a dial when Dialer.Timeout is zero. Tor's own
// SocksTimeout is 120 s, and a stream to an onion service whose descriptor is
// cached but which went away is answered only then (0x06), so the dialer
// needs a shorter bound of its own. A cold onion dial on the public network
// rarely needs more than 30 s.
const DefaultTimeout = 60 * time.Second

// Dialer dials TCP destinations through tor's SocksPort. The zero value is
// not usable: ProxyAddr is required. A Dialer is safe for concurrent use and
// must not be modified after first use.
type Dialer struct {
	// ProxyAddr is tor's SocksPort: "127.0.0.1:9050" or, for a
	// "SocksPort unix:/path" listener, "unix:/path".
	ProxyAddr string
	// Isolation, when not empty, is sent as both SOCKS username and
	// password. Tor's IsolateSOCKSAuth (on by default) keeps streams with
	// different credentials on different circuits, so use one value per
	// peer (see ForPeer). At most 255 bytes, and not starting "<torS0".
	Isolation string
	// Timeout bounds the whole dial: connecting to the proxy, the handshake
	// and tor's work to reach the destination. Zero means DefaultTimeout;
	// negative means only the context bounds it.
	Timeout time.Duration

	// rotate is set by ForPeer: after an onion dial fails once tor had the
	// request, the next dial uses a fresh credential (see retryCredential).
	rotate bool
}

// ForPeer returns a copy of d whose Isolation is derived from the peer id:
// the first 128 bits, hex, of SHA-256 over a random per-process salt and id.
// The same id yields the same credential (so its streams share circuits)
// until an onion dial to it fails in a way a new circuit can cure; then the
// next dial uses a credential derived from that one (see rotates).
// Credentials cannot be linked to peer ids, or across restarts, by anyone
// reading tor's state.
func (d *Dialer) ForPeer(id string) *Dialer {
	c := *d
	h := sha256.New()
	h.Write([]byte("mmogit socks isolation v1\x00"))
	h.Write(processSalt())
	h.Write([]byte(id))
	// Hex never starts with "<", so it never collides with "<torS0".
	c.Isolation = hex.EncodeToString(h.Sum(nil)[:16])
	c.rotate = true
	return &c
}

// A stream to an onion service attaches to the rendezvous circuit tor
// already has for that service and credential, even one whose introduction
// was acknowledged but whose rendezvous the service never completed (its
// own circuit to the rendezvous point failed). Tor keeps such a circuit for
// up to SocksTimeout or longer, so every retry with the same credential
// waits on the same dead circuit; this was seen stalling dials for over
// two minutes on the private network. After a failed onion dial the next
// dial of a ForPeer dialer therefore sends a credential derived from the
// peer's one and a failure count, which makes tor build a new rendezvous.
// Streams of one peer still share circuits, and no two peers share one.
var (
	failures  sync.Map     // base credential → *atomic.Uint64
	nFailures atomic.Int64 // entries in failures, roughly
)

// maxFailures bounds the failure table of a long-running process that
// meets many peers: past it the table is dropped, and those peers go back
// to their base credential, which costs at most one more stalled dial.
const maxFailures = 4096

// credential returns the credential to send and the failure count it
// stands for.
func (d *Dialer) credential() (string, uint64) {
	if !d.rotate {
		return d.Isolation, 0
	}
	v, ok := failures.Load(d.Isolation)
	if !ok {
		return d.Isolation, 0
	}
	n := v.(*atomic.Uint64).Load()
	return retryCredential(d.Isolation, n), n
}

// retryCredential derives the credential used after n failures: 32 hex
// characters, like the base one.
func retryCredential(base string, n uint64) string {
	if n == 0 {
		return base
	}
	h := sha256.New()
	h.Write([]byte("mmogit socks isolation retry v1\x00"))
	h.Write([]byte(base))
	h.Write(binary.BigEndian.AppendUint64(nil, n))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// noteFailure records that a dial sent with the credential of failure
// count n failed. Concurrent failures of one count advance it once.
func (d *Dialer) noteFailure(n uint64) {
	v, loaded := failures.LoadOrStore(d.Isolation, new(atomic.Uint64))
	if !loaded && nFailures.Add(1) > maxFailures {
		failures.Clear()
		nFailures.Store(0)
		return
	}
	v.(*atomic.Uint64).CompareAndSwap(n, n+1)
}

// rotates reports whether a failed dial should move the peer to a new
// credential: tor had the CONNECT for an onion address, and the failure
// is one a new circuit can cure (introduction or rendezvous failed or
// timed out, the stream was not answered in time, tor's general failure).
// A missing descriptor (0xF0), a bad one (0xF1), a refused port, client
// authorization and address errors are not.
func rotates(onion bool, st stage, err error) bool {
	if !onion || st < stageConnect {
		return false
	}
	var re *ReplyError
	if errors.As(err, &re) {
		switch re.Code {
		case ReplyOnionIntroFailed, ReplyOnionRendezvousFailed, ReplyOnionIntroTimedOut,
			ReplyTTLExpired, ReplyHostUnreachable, ReplyGeneralFailure:
			return true
		}
		return false
	}
	return errors.Is(err, context.DeadlineExceeded) // our Timeout, or the caller's deadline
}

var processSalt = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b) // crypto/rand.Read never fails on Linux (it panics if it could)
	return b
})

// DialContext connects to addr ("host:port") through the proxy. The host
// is sent as a domain name unless it is an IP literal; it is never resolved
// here. Cancelling ctx, or Timeout expiring, aborts the dial at any step and
// closes the connection to the proxy. On failure the error is an *Error
// matching one of the kinds (errors.Is), except when ctx itself was
// cancelled: then it wraps ctx's error (context.Canceled/DeadlineExceeded).
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	fail := func(kind error, hint string, err error) (net.Conn, error) {
		return nil, &Error{Kind: kind, Addr: addr, Proxy: d.ProxyAddr, Hint: hint, Err: err}
	}
	if d.ProxyAddr == "" {
		return fail(ErrSocksProxy, "set the proxy address to tor's SocksPort", errors.New("no proxy address"))
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return fail(ErrBadAddress, "only tcp can go through tor", fmt.Errorf("network %q not supported", network))
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return fail(ErrBadAddress, "", err)
	}
	req, err := appendConnect(make([]byte, 0, 64), host, port)
	if err != nil {
		return fail(ErrBadAddress, "", err)
	}
	if err := checkIsolation(d.Isolation); err != nil {
		return fail(ErrBadAddress, "", err)
	}

	timeout := d.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	dctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeoutCause(ctx, timeout, errDialTimeout)
		defer cancel()
	}

	conn, err := d.dialProxy(dctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("socks: dial %s: %w", addr, context.Cause(ctx))
		}
		return fail(ErrDaemonNotRunning, "start tor (mmogit tor start) or check the SocksPort address", err)
	}
	// Closing the connection is the one way to interrupt a blocked Read or
	// Write; AfterFunc starts no goroutine unless ctx ends first.
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	cred, n := d.credential()
	st, err := handshake(conn, cred, req)
	if !stop() || err != nil {
		conn.Close()
		c, err := d.handshakeError(ctx, dctx, addr, isOnion(host), timeout, st, err)
		if d.rotate && rotates(isOnion(host), st, err) {
			d.noteFailure(n)
		}
		return c, err
	}
	return conn, nil
}

var errDialTimeout = errors.New("socks dial timeout")

func (d *Dialer) dialProxy(ctx context.Context) (net.Conn, error) {
	var nd net.Dialer
	if path, ok := strings.CutPrefix(d.ProxyAddr, "unix:"); ok {
		return nd.DialContext(ctx, "unix", path)
	}
	return nd.DialContext(ctx, "tcp", d.ProxyAddr)
}

// splitHostPort splits "host:port" and checks the port is 1–65535.
func splitHostPort(addr string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("invalid port %q", ps)
	}
	return host, uint16(p), nil
}

// stage is how far a handshake got; it decides what a failure means.
type stage int

const (
	stageGreeting stage = iota // nothing received yet
	stageAuth                  // method chosen, credential sent
	stageConnect               // CONNECT sent, waiting for tor to reach the destination
	stageDone
)

// handshake runs greeting, optional RFC 1929 authentication and CONNECT on
// conn. A non-success reply comes back as a *ReplyError.
func handshake(conn io.ReadWriter, isolation string, req []byte) (stage, error) {
	var buf [4 + 1 + 255 + 2]byte // the largest reply
	withAuth := isolation != ""
	if _, err := conn.Write(appendGreeting(buf[:0], withAuth)); err != nil {
		return stageGreeting, err
	}
	if _, err := io.ReadFull(conn, buf[:2]); err != nil {
		return stageGreeting, err
	}
	method := byte(methodNoAuth)
	if withAuth {
		method = methodUserPass
	}
	if err := parseMethodSelection([2]byte(buf[:2]), method); err != nil {
		return stageAuth, err
	}
	if withAuth {
		if _, err := conn.Write(appendUserPass(buf[:0], isolation, isolation)); err != nil {
			return stageAuth, err
		}
		if _, err := io.ReadFull(conn, buf[:2]); err != nil {
			return stageAuth, err
		}
		if err := parseUserPassReply([2]byte(buf[:2])); err != nil {
			return stageAuth, err
		}
	}
	if _, err := conn.Write(req); err != nil {
		return stageConnect, err
	}
	if _, err := io.ReadFull(conn, buf[:replyHeaderLen]); err != nil {
		return stageConnect, err
	}
	n, err := replyLen(buf[:replyHeaderLen])
	if err != nil {
		return stageConnect, err
	}
	if _, err := io.ReadFull(conn, buf[replyHeaderLen:n]); err != nil {
		return stageConnect, err
	}
	r, err := parseReply(buf[:n])
	if err != nil {
		return stageConnect, err
	}
	if r.code != ReplySucceeded {
		return stageDone, &ReplyError{Code: r.code, Reason: ReplyReason(r.code)}
	}
	return stageDone, nil
}

// handshakeError classifies a failed handshake. ctx is the caller's
// context, dctx the one bounded by the dial timeout.
func (d *Dialer) handshakeError(ctx, dctx context.Context, addr string, onion bool, timeout time.Duration, st stage, err error) (net.Conn, error) {
	e := &Error{Addr: addr, Proxy: d.ProxyAddr, Err: err}
	var re *ReplyError
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("socks: dial %s: %w", addr, context.Cause(ctx))
	case dctx.Err() != nil:
		e.Err = fmt.Errorf("tor did not answer within %v: %w", timeout, context.DeadlineExceeded)
		if st < stageConnect {
			e.Kind, e.Hint = ErrSocksProxy, "the proxy does not answer the SOCKS handshake; "+hintProxy
		} else if onion {
			e.Kind, e.Hint, e.retryAfter = ErrOnionServiceUnreachable, "the peer may be offline; retry later", 5*time.Second
		} else {
			e.Kind, e.Hint, e.retryAfter = ErrCircuitBuildFailed, "tor may still be bootstrapping or the network is down; retry later", 5*time.Second
		}
	case errors.As(err, &re):
		c := classifyReply(re.Code, onion)
		e.Kind, e.Hint, e.retryAfter = c.kind, c.hint, c.retryAfter
	case isClosedByPeer(err):
		// The proxy hung up (or reset) before its answer was complete, at
		// whatever step: what tor does when it exits or is killed while a
		// dial is in progress. Something that is not a SOCKS proxy gives
		// itself away by answering bytes that do not parse, which is the
		// default case below. Tor may be restarted (the agent restarts the
		// tor it manages), so a later dial may work.
		e.Kind, e.retryAfter = ErrDaemonNotRunning, daemonGoneRetry
		e.Err = fmt.Errorf("the proxy closed the connection %s without answering: %w", st.during(), err)
		e.Hint = "tor probably exited or was restarted: check that tor is running (mmogit tor status) and that the proxy address is its SocksPort"
	case errors.Is(err, errMalformed):
		e.Kind, e.Hint = ErrSocksProxy, "what answered is not a SOCKS5 proxy; "+hintProxy
	default:
		e.Kind, e.Hint = ErrSocksProxy, hintProxy
	}
	return nil, e
}

// daemonGoneRetry is the retry hint after tor hung up mid-handshake: long
// enough for a managed tor to be restarted and bootstrap from its cache.
const daemonGoneRetry = 3 * time.Second

// during names the step a stage stands for, for error messages.
func (st stage) during() string {
	switch st {
	case stageGreeting:
		return "after the greeting"
	case stageAuth:
		return "during authentication"
	case stageConnect:
		return "after CONNECT"
	}
	return "after the reply"
}

// isClosedByPeer reports whether err means the other side hung up.
func isClosedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
