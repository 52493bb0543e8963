package socks

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kinds of dial failure, after the seed's TorError. Every error DialContext
// returns (other than the caller cancelling its context) matches exactly one
// of them with errors.Is. Their texts are only fallbacks: the *Error that
// wraps them says what happened and what to do.
var (
	// ErrDaemonNotRunning: nothing accepted the connection at ProxyAddr
	// (not retryable: pointless until tor is started), or the proxy closed
	// or reset the connection before its reply was complete, at any step
	// of the handshake — tor exiting or restarting mid-dial (retryable
	// after a few seconds, in case tor is being restarted). A proxy that
	// answers bytes that are not SOCKS5 is ErrSocksProxy instead.
	ErrDaemonNotRunning = errors.New("socks: tor is not running")
	// ErrCircuitBuildFailed: tor is up but could not carry the stream
	// (general failure, no route, timeout) to a non-onion destination.
	ErrCircuitBuildFailed = errors.New("socks: tor could not build a circuit")
	// ErrOnionServiceUnreachable: the peer's onion service could not be
	// reached (descriptor missing or invalid, introduction or rendezvous
	// failed, timeout). Usually transient.
	ErrOnionServiceUnreachable = errors.New("socks: onion service unreachable")
	// ErrOnionAuth: the onion service requires client authorization that is
	// missing (0xF4) or wrong (0xF5). Needs configuration, not a retry.
	ErrOnionAuth = errors.New("socks: onion service client authorization failed")
	// ErrBadAddress: the address is malformed — rejected by tor (0xF6) or
	// by this package before dialing.
	ErrBadAddress = errors.New("socks: bad address")
	// ErrSocksProxy: the proxy broke the protocol, spoke another version,
	// refused the authentication method or sent a code tor never sends —
	// ProxyAddr is probably not a tor SocksPort.
	ErrSocksProxy = errors.New("socks: SOCKS proxy error")
)

// ReplyError is a non-success reply code from the proxy.
type ReplyError struct {
	Code   byte
	Reason string // ReplyReason(Code)
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s (SOCKS reply 0x%02x)", e.Reason, e.Code)
}

// Error is what DialContext returns on failure. Kind is one of the Err*
// sentinels and Err the cause (a *ReplyError, a network error, a context
// error); both are reachable with errors.Is and errors.As.
type Error struct {
	Kind  error  // ErrDaemonNotRunning, ErrCircuitBuildFailed, …
	Addr  string // destination "host:port" as given to DialContext
	Proxy string // the proxy's address
	Hint  string // what the user can do about it
	Err   error  // the underlying cause

	retryAfter time.Duration // 0: do not retry
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("socks: dial ")
	b.WriteString(e.Addr)
	b.WriteString(" via ")
	b.WriteString(e.Proxy)
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "socks: "))
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Retryable reports whether dialing again later may succeed without anyone
// changing configuration: true for transient onion and circuit failures,
// false for bad addresses, client-authorization problems, a stopped tor
// (nothing listening), a misconfigured proxy and cancellation by the
// caller. Tor hanging up in the middle of a dial is retryable.
func Retryable(err error) bool { return RetryAfter(err) > 0 }

// RetryAfter suggests how long to wait before dialing again; 0 means do not
// retry. It is a hint tuned to tor's behaviour, not a guarantee: after F0,
// for instance, tor will not ask the same HSDirs again for a while, so a
// retry only helps once the peer has published (seconds) or after NEWNYM.
func RetryAfter(err error) time.Duration {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.retryAfter
	}
	// Errors built elsewhere around a bare kind get the kind's default.
	switch {
	case errors.Is(err, ErrOnionServiceUnreachable):
		return 5 * time.Second
	case errors.Is(err, ErrCircuitBuildFailed):
		return 5 * time.Second
	}
	return 0
}

// classification is what a reply code means for the caller.
type classification struct {
	kind       error
	hint       string
	retryAfter time.Duration
}

const (
	hintProxy = "check that the proxy address is tor's SocksPort"
	hintRetry = "retry in a few seconds"
)

// classifyReply maps a reply code to a kind, a hint and a retry delay.
// onion says whether the destination was a .onion name: tor's plain
// (non-ExtendedErrors) port reports onion failures as 0x04 or 0x06, and
// those mean the peer, not the circuit.
func classifyReply(code byte, onion bool) classification {
	switch code {
	case ReplyOnionDescNotFound:
		return classification{ErrOnionServiceUnreachable,
			"the peer is offline or has not published its onion service yet; " + hintRetry, 5 * time.Second}
	case ReplyOnionDescInvalid:
		return classification{ErrOnionServiceUnreachable,
			"the peer published a descriptor tor cannot use; retry later and check that both sides run a current tor", 30 * time.Second}
	case ReplyOnionIntroFailed:
		return classification{ErrOnionServiceUnreachable,
			"the peer's introduction points did not answer: it may have just gone offline or be overloaded; " + hintRetry, 2 * time.Second}
	case ReplyOnionRendezvousFailed:
		return classification{ErrOnionServiceUnreachable,
			"the rendezvous circuit failed; retry", time.Second}
	case ReplyOnionIntroTimedOut:
		return classification{ErrOnionServiceUnreachable,
			"the peer's introduction point timed out; " + hintRetry, 2 * time.Second}
	case ReplyOnionAuthMissing:
		return classification{ErrOnionAuth,
			"the peer requires client authorization: add the client key it gave you", 0}
	case ReplyOnionAuthWrong:
		return classification{ErrOnionAuth,
			"the client authorization key for this peer is wrong: replace it with the one the peer gave you", 0}
	case ReplyOnionBadAddress:
		return classification{ErrBadAddress,
			"not a valid v3 onion address (56 base32 characters with a valid checksum): check the address", 0}
	case ReplyGeneralFailure:
		return classification{ErrCircuitBuildFailed,
			"tor could not build a circuit for the stream: check network connectivity (and bridges in a censored network), then retry", 2 * time.Second}
	case ReplyNotAllowed:
		return classification{ErrCircuitBuildFailed,
			"tor's exit or SOCKS policy refuses this destination", 0}
	case ReplyNetworkUnreachable:
		return classification{ErrCircuitBuildFailed,
			"tor has no route to the network: check connectivity, then retry", 10 * time.Second}
	case ReplyHostUnreachable, ReplyTTLExpired:
		if onion {
			return classification{ErrOnionServiceUnreachable,
				"the peer's onion service could not be reached: it may be offline; " + hintRetry, 5 * time.Second}
		}
		return classification{ErrCircuitBuildFailed,
			"the destination could not be reached through tor; " + hintRetry, 5 * time.Second}
	case ReplyConnectionRefused:
		if onion {
			return classification{ErrOnionServiceUnreachable,
				"the peer's onion service is up but nothing listens on that port: check the port, or retry if the peer is restarting", 30 * time.Second}
		}
		return classification{ErrCircuitBuildFailed,
			"the destination refused the connection", 30 * time.Second}
	case ReplyCommandNotSupported, ReplyAddrNotSupported:
		return classification{ErrSocksProxy, hintProxy, 0}
	}
	return classification{ErrSocksProxy, "tor never sends this code; " + hintProxy, 0}
}

// isOnion reports whether host is in the .onion special-use domain.
func isOnion(host string) bool {
	const suffix = ".onion"
	host = strings.TrimSuffix(host, ".") // a fully qualified name is the same name
	return len(host) > len(suffix) && strings.EqualFold(host[len(host)-len(suffix):], suffix)
}
