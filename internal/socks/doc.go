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
// Host names are never resolved locally: a name is always sent to tor as a
// SOCKS5 domain name (ATYP 0x03) so that no DNS query leaves the machine;
// only IP literals are sent as IPv4/IPv6 addresses. Each peer gets its own
// SOCKS credential (Dialer.ForPeer) so that tor, whose IsolateSOCKSAuth is on
// by default, puts streams to different peers on different circuits.
package socks
