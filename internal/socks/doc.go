// Package socks is mmogit's SOCKS5 client for tor.
//
// It speaks RFC 1928 (SOCKS5 CONNECT), RFC 1929 (username/password
// authentication) and tor's ExtendedErrors reply codes
// (torspec socks-extensions.txt), which golang.org/x/net/proxy reports only
// as "unknown code". Every failure is classified into one of a few kinds
// (ErrDaemonNotRunning, ErrCircuitBuildFailed, ErrOnionServiceUnreachable,
// ErrOnionAuth, ErrBadAddress, ErrSocksProxy) that callers test with
// errors.Is, and Retryable/RetryAfter turn the kind and the reply code into a
// retry hint.
//
// How replies are classified (onion = the destination ends in .onion):
//
//	reply                          kind                         retry after
//	0xF0 descriptor not found      ErrOnionServiceUnreachable   5 s
//	0xF1 descriptor invalid        ErrOnionServiceUnreachable   30 s
//	0xF2 introduction failed       ErrOnionServiceUnreachable   2 s
//	0xF3 rendezvous failed         ErrOnionServiceUnreachable   1 s
//	0xF7 introduction timed out    ErrOnionServiceUnreachable   2 s
//	0xF4/0xF5 client auth          ErrOnionAuth                 no
//	0xF6 bad onion address         ErrBadAddress                no
//	0x04/0x06, onion               ErrOnionServiceUnreachable   5 s
//	0x05, onion (port not mapped)  ErrOnionServiceUnreachable   30 s
//	0x01, 0x03, 0x04–0x06          ErrCircuitBuildFailed        2–30 s
//	0x02 not allowed               ErrCircuitBuildFailed        no
//	0x07, 0x08, unknown codes      ErrSocksProxy                no
//	nothing listens at ProxyAddr   ErrDaemonNotRunning          no
//	EOF/reset before the reply     ErrDaemonNotRunning          3 s
//	(any step: tor died mid-dial)
//	answer that is not SOCKS5      ErrSocksProxy                no
//	Dialer.Timeout, after CONNECT  onion or circuit kind        5 s
//	malformed host, port, network  ErrBadAddress                no
//
// Host names are never resolved locally: a name is always sent to tor as a
// SOCKS5 domain name (ATYP 0x03) so that no DNS query leaves the machine;
// only IP literals are sent as IPv4/IPv6 addresses. Each peer gets its own
// SOCKS credential (Dialer.ForPeer) so that tor, whose IsolateSOCKSAuth is on
// by default, puts streams to different peers on different circuits. After
// an onion dial of a ForPeer dialer fails once tor had the request
// (unreachable, rendezvous or introduction failure, or no answer in time),
// the peer's next dial sends a new credential derived from the old one:
// tor would otherwise attach the retry to the rendezvous circuit that
// failed and wait on it again.
package socks
