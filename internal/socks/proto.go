package socks

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Wire constants from RFC 1928 and RFC 1929.
const (
	socksVersion    = 0x05
	authVersion     = 0x01 // RFC 1929 sub-negotiation version
	cmdConnect      = 0x01
	methodNoAuth    = 0x00
	methodUserPass  = 0x02
	methodNoAccept  = 0xFF
	atypIPv4        = 0x01
	atypDomain      = 0x03
	atypIPv6        = 0x04
	maxDomainLength = 255 // the length is one octet
)

// Reply codes (RFC 1928 §6 and tor's socks-extensions.txt "Extended error
// codes"). Tor sends the 0xF0–0xF7 codes only on a SocksPort with the
// ExtendedErrors flag; without it the same failures arrive as 0x01 or 0x04.
const (
	ReplySucceeded           byte = 0x00
	ReplyGeneralFailure      byte = 0x01
	ReplyNotAllowed          byte = 0x02
	ReplyNetworkUnreachable  byte = 0x03
	ReplyHostUnreachable     byte = 0x04
	ReplyConnectionRefused   byte = 0x05
	ReplyTTLExpired          byte = 0x06
	ReplyCommandNotSupported byte = 0x07
	ReplyAddrNotSupported    byte = 0x08

	// "Onion Service Descriptor Can Not be Found": tor asked the HSDirs and
	// none had it — the service is offline or has not published yet.
	ReplyOnionDescNotFound byte = 0xF0
	// "Onion Service Descriptor Is Invalid": found but unparseable or its
	// signature did not verify.
	ReplyOnionDescInvalid byte = 0xF1
	// "Onion Service Introduction Failed": every introduction point failed.
	ReplyOnionIntroFailed byte = 0xF2
	// "Onion Service Rendezvous Failed".
	ReplyOnionRendezvousFailed byte = 0xF3
	// "Onion Service Missing Client Authorization".
	ReplyOnionAuthMissing byte = 0xF4
	// "Onion Service Wrong Client Authorization".
	ReplyOnionAuthWrong byte = 0xF5
	// "Onion Service Invalid Address": bad length, version or checksum.
	ReplyOnionBadAddress byte = 0xF6
	// "Onion Service Introduction Timed Out".
	ReplyOnionIntroTimedOut byte = 0xF7
)

// ReplyReason is the short description of a reply code, worded after the
// RFC and tor's spec. Unknown codes get a generic text.
func ReplyReason(code byte) string {
	switch code {
	case ReplySucceeded:
		return "succeeded"
	case ReplyGeneralFailure:
		return "general SOCKS server failure"
	case ReplyNotAllowed:
		return "connection not allowed by ruleset"
	case ReplyNetworkUnreachable:
		return "network unreachable"
	case ReplyHostUnreachable:
		return "host unreachable"
	case ReplyConnectionRefused:
		return "connection refused"
	case ReplyTTLExpired:
		return "TTL expired"
	case ReplyCommandNotSupported:
		return "command not supported"
	case ReplyAddrNotSupported:
		return "address type not supported"
	case ReplyOnionDescNotFound:
		return "onion service descriptor not found"
	case ReplyOnionDescInvalid:
		return "onion service descriptor is invalid"
	case ReplyOnionIntroFailed:
		return "onion service introduction failed"
	case ReplyOnionRendezvousFailed:
		return "onion service rendezvous failed"
	case ReplyOnionAuthMissing:
		return "onion service requires client authorization"
	case ReplyOnionAuthWrong:
		return "onion service client authorization is wrong"
	case ReplyOnionBadAddress:
		return "invalid onion service address"
	case ReplyOnionIntroTimedOut:
		return "onion service introduction timed out"
	}
	return fmt.Sprintf("unknown reply code 0x%02x", code)
}

// errMalformed marks a proxy answer that does not follow RFC 1928.
var errMalformed = errors.New("malformed reply")

// appendGreeting appends the client greeting (RFC 1928 §3):
//
//	+----+----------+----------+
//	|VER | NMETHODS | METHODS  |
//	+----+----------+----------+
//	| 1  |    1     | 1 to 255 |
//
// Only one method is offered: username/password when an isolation credential
// is set (so the proxy cannot silently drop isolation by choosing "no
// authentication"), otherwise no authentication.
func appendGreeting(b []byte, withAuth bool) []byte {
	m := byte(methodNoAuth)
	if withAuth {
		m = methodUserPass
	}
	return append(b, socksVersion, 1, m)
}

// parseMethodSelection checks the server's method choice:
//
//	+----+--------+
//	|VER | METHOD |
//	+----+--------+
func parseMethodSelection(b [2]byte, offered byte) error {
	if b[0] != socksVersion {
		return fmt.Errorf("%w: version 0x%02x in method selection, want 0x05 (is this a SOCKS5 port?)", errMalformed, b[0])
	}
	switch b[1] {
	case offered:
		return nil
	case methodNoAccept:
		if offered == methodUserPass {
			return errors.New("proxy refused username/password authentication")
		}
		return errors.New("proxy requires authentication")
	}
	return fmt.Errorf("%w: proxy chose method 0x%02x, which was not offered", errMalformed, b[1])
}

// appendUserPass appends the RFC 1929 request:
//
//	+----+------+----------+------+----------+
//	|VER | ULEN |  UNAME   | PLEN |  PASSWD  |
//	+----+------+----------+------+----------+
//	| 1  |  1   | 1 to 255 |  1   | 1 to 255 |
func appendUserPass(b []byte, user, pass string) []byte {
	b = append(b, authVersion, byte(len(user)))
	b = append(b, user...)
	b = append(b, byte(len(pass)))
	return append(b, pass...)
}

// parseUserPassReply checks the RFC 1929 answer: VER (0x01) and STATUS, where
// 0x00 is success. Tor answers with VER 0x01.
func parseUserPassReply(b [2]byte) error {
	if b[0] != authVersion {
		return fmt.Errorf("%w: authentication reply version 0x%02x, want 0x01", errMalformed, b[0])
	}
	if b[1] != 0 {
		return fmt.Errorf("proxy rejected the isolation credential (status 0x%02x)", b[1])
	}
	return nil
}

// checkIsolation validates an isolation credential before it is sent as both
// SOCKS username and password.
func checkIsolation(s string) error {
	if len(s) > maxDomainLength {
		return fmt.Errorf("isolation credential is %d bytes, more than 255", len(s))
	}
	// Tor 0.4.9 treats usernames starting "<torS0" as the extended-parameter
	// scheme of proposal 351 and rejects any but "<torS0X>0".
	if strings.HasPrefix(s, "<torS0") {
		return errors.New(`isolation credential must not start with "<torS0" (tor's extended SOCKS parameters)`)
	}
	return nil
}

// appendConnect appends a CONNECT request (RFC 1928 §4):
//
//	+----+-----+-------+------+----------+----------+
//	|VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
//	+----+-----+-------+------+----------+----------+
//	| 1  |  1  | X'00' |  1   | Variable |    2     |
//
// An IP literal goes as ATYP 0x01/0x04; anything else as a domain name
// (ATYP 0x03) for tor to resolve or, for .onion, to look up — this package
// never resolves names itself.
func appendConnect(b []byte, host string, port uint16) ([]byte, error) {
	if host == "" {
		return b, errors.New("empty host")
	}
	b = append(b, socksVersion, cmdConnect, 0)
	if ip, err := parseIP(host); err == nil {
		if ip.Zone() != "" {
			return b, fmt.Errorf("IPv6 zone in %q cannot be sent through a proxy", host)
		}
		if ip.Is4() {
			a := ip.As4()
			b = append(append(b, atypIPv4), a[:]...)
		} else {
			a := ip.As16()
			b = append(append(b, atypIPv6), a[:]...)
		}
	} else {
		if len(host) > maxDomainLength {
			return b, fmt.Errorf("host name is %d bytes, more than the 255 SOCKS5 allows", len(host))
		}
		b = append(b, atypDomain, byte(len(host)))
		b = append(b, host...)
	}
	return binary.BigEndian.AppendUint16(b, port), nil
}

// parseIP parses an IP literal. Names skip netip.ParseAddr, whose error
// allocates: a literal has a ':' (IPv6) or only digits and dots (IPv4).
func parseIP(host string) (netip.Addr, error) {
	if !strings.ContainsRune(host, ':') && strings.Trim(host, "0123456789.") != "" {
		return netip.Addr{}, errNotIP
	}
	return netip.ParseAddr(host)
}

var errNotIP = errors.New("not an IP literal")

// reply is a decoded CONNECT reply (RFC 1928 §6):
//
//	+----+-----+-------+------+----------+----------+
//	|VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
//	+----+-----+-------+------+----------+----------+
//	| 1  |  1  | X'00' |  1   | Variable |    2     |
type reply struct {
	code       byte
	bindAddr   netip.Addr // ATYP 0x01/0x04; tor sends 0.0.0.0
	bindDomain string     // ATYP 0x03
	bindPort   uint16
}

// replyHeaderLen is how many bytes must be read before the reply's total
// length is known: VER REP RSV ATYP plus the domain length octet.
const replyHeaderLen = 5

// replyLen returns the full length of a reply given at least its first
// replyHeaderLen bytes.
func replyLen(h []byte) (int, error) {
	if len(h) < replyHeaderLen {
		return 0, fmt.Errorf("%w: %d-byte header", errMalformed, len(h))
	}
	if h[0] != socksVersion {
		return 0, fmt.Errorf("%w: reply version 0x%02x, want 0x05", errMalformed, h[0])
	}
	switch h[3] {
	case atypIPv4:
		return 4 + 4 + 2, nil
	case atypIPv6:
		return 4 + 16 + 2, nil
	case atypDomain:
		return 4 + 1 + int(h[4]) + 2, nil
	}
	return 0, fmt.Errorf("%w: address type 0x%02x", errMalformed, h[3])
}

// parseReply decodes exactly one reply. It does not judge the reply code;
// replyErr does.
func parseReply(b []byte) (reply, error) {
	n, err := replyLen(b)
	if err != nil {
		return reply{}, err
	}
	if len(b) != n {
		return reply{}, fmt.Errorf("%w: %d bytes, want %d", errMalformed, len(b), n)
	}
	// RSV must be zero, but tor and other servers are not strict about it
	// and the field carries no meaning, so it is ignored.
	r := reply{code: b[1], bindPort: binary.BigEndian.Uint16(b[n-2:])}
	switch b[3] {
	case atypIPv4:
		r.bindAddr = netip.AddrFrom4([4]byte(b[4:8]))
	case atypIPv6:
		r.bindAddr = netip.AddrFrom16([16]byte(b[4:20]))
	case atypDomain:
		r.bindDomain = string(b[5 : n-2])
	}
	return r, nil
}
