package sctrace

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Address families as strace names them.
const (
	AFUnix    = "AF_UNIX"
	AFInet    = "AF_INET"
	AFInet6   = "AF_INET6"
	AFNetlink = "AF_NETLINK"
	AFUnspec  = "AF_UNSPEC"
)

// Addr is a decoded socket address.
type Addr struct {
	Family string     // "AF_INET", "AF_UNIX", ... as strace prints it
	IP     netip.Addr // AF_INET, AF_INET6
	Port   int        // AF_INET, AF_INET6
	Path   string     // AF_UNIX; an abstract name starts with "@", an unnamed socket is ""
	Raw    string     // the struct as strace printed it
}

func (a Addr) String() string {
	switch a.Family {
	case AFInet, AFInet6:
		return a.Family + " " + netip.AddrPortFrom(a.IP, uint16(a.Port)).String()
	case AFUnix:
		return a.Family + " " + strconv.Quote(a.Path)
	}
	return a.Raw
}

// ParseSockaddr decodes strace's rendering of a struct sockaddr, e.g.
//
//	{sa_family=AF_INET, sin_port=htons(9050), sin_addr=inet_addr("127.0.0.1")}
//	{sa_family=AF_INET6, sin6_port=htons(1), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}
//	{sa_family=AF_UNIX, sun_path="/run/x.sock"}   (abstract: sun_path=@"name")
//	{sa_family=AF_NETLINK, nl_pid=0, nl_groups=00000000}
//
// Unknown families decode to their name with only Raw set.
func ParseSockaddr(s string) (Addr, error) {
	a := Addr{Raw: s}
	body, ok := strings.CutPrefix(s, "{")
	if body, ok = strings.CutSuffix(body, "}"); !ok {
		return a, fmt.Errorf("%w: sockaddr %q", ErrSyntax, s)
	}
	fields := map[string]string{}
	for _, f := range splitTop(body) {
		if k, v, ok := strings.Cut(f, "="); ok && !strings.HasPrefix(f, "inet_pton(") {
			fields[k] = v
		} else if strings.HasPrefix(f, "inet_pton(") {
			fields["inet_pton"] = f
		}
	}
	a.Family = fields["sa_family"]
	if a.Family == "" {
		return a, fmt.Errorf("%w: sockaddr without sa_family: %q", ErrSyntax, s)
	}
	var err error
	switch a.Family {
	case AFUnix:
		a.Path, err = unquotePath(fields["sun_path"])
	case AFInet:
		if a.Port, err = parseHtons(fields["sin_port"]); err == nil {
			a.IP, err = parseCallArg(fields["sin_addr"], "inet_addr(")
		}
	case AFInet6:
		if a.Port, err = parseHtons(fields["sin6_port"]); err == nil {
			// inet_pton(AF_INET6, "::1", &sin6_addr)
			parts := splitTop(strings.TrimSuffix(strings.TrimPrefix(fields["inet_pton"], "inet_pton("), ")"))
			if len(parts) != 3 {
				return a, fmt.Errorf("%w: sockaddr_in6 address in %q", ErrSyntax, s)
			}
			a.IP, err = parseQuotedIP(parts[1])
		}
	}
	if err != nil {
		return a, fmt.Errorf("%w: sockaddr %q: %v", ErrSyntax, s, err)
	}
	return a, nil
}

func parseHtons(v string) (int, error) {
	v, ok := strings.CutPrefix(v, "htons(")
	if v, ok2 := strings.CutSuffix(v, ")"); ok && ok2 {
		return strconv.Atoi(v)
	}
	return 0, fmt.Errorf("port %q", v)
}

func parseCallArg(v, fn string) (netip.Addr, error) {
	v, ok := strings.CutPrefix(v, fn)
	if v, ok2 := strings.CutSuffix(v, ")"); ok && ok2 {
		return parseQuotedIP(v)
	}
	return netip.Addr{}, fmt.Errorf("address %q", v)
}

func parseQuotedIP(v string) (netip.Addr, error) {
	u, err := strconv.Unquote(v)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %w", v, err)
	}
	return netip.ParseAddr(u)
}

// unquotePath decodes sun_path: "…" for a path, @"…" for an abstract name,
// absent for an unnamed socket. strace escapes like C (\x.., \ooo, \n),
// which strconv.Unquote also reads for the cases strace emits.
func unquotePath(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	prefix := ""
	if r, ok := strings.CutPrefix(v, "@"); ok {
		prefix, v = "@", r
	}
	v = strings.TrimSuffix(v, "...") // truncated by -s; keep the prefix we have
	u, err := strconv.Unquote(v)
	if err != nil {
		return "", fmt.Errorf("sun_path %s: %w", v, err)
	}
	return prefix + u, nil
}

// Destinations returns the socket addresses a call names as its target:
// connect's address, sendto's dest_addr, the msg_name of sendmsg and of
// every message of sendmmsg. A send on a connected socket names none (its
// destination is the earlier connect). Other calls return nil.
func (e Event) Destinations() ([]Addr, error) {
	args := e.ArgList()
	var raw []string
	switch e.Syscall {
	case "connect":
		if len(args) >= 2 {
			raw = append(raw, args[1])
		}
	case "sendto":
		if len(args) >= 5 && args[4] != "NULL" {
			raw = append(raw, args[4])
		}
	case "sendmsg", "sendmmsg":
		if len(args) >= 2 {
			raw = msgNames(args[1])
		}
	default:
		return nil, nil
	}
	var out []Addr
	for _, r := range raw {
		if !strings.HasPrefix(r, "{") {
			continue // an address strace could not read: "0x7ffd…"
		}
		a, err := ParseSockaddr(r)
		if err != nil {
			return out, fmt.Errorf("%w (line %d)", err, e.Line)
		}
		out = append(out, a)
	}
	return out, nil
}

// msgNames finds every msg_name={...} in a msghdr or mmsghdr array,
// outside quoted payloads.
func msgNames(s string) []string {
	const key = "msg_name="
	var out []string
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			i = skipQuoted(s, i)
			continue
		}
		if !strings.HasPrefix(s[i:], key) {
			continue
		}
		v := s[i+len(key):]
		if !strings.HasPrefix(v, "{") {
			continue // NULL
		}
		if end := matchBrace(v); end > 0 {
			out = append(out, v[:end+1])
			i += len(key) + end
		}
	}
	return out
}

// matchBrace returns the index of the '}' closing the '{' at s[0], or -1.
func matchBrace(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			i = skipQuoted(s, i)
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
			if depth == 0 {
				if s[i] == '}' {
					return i
				}
				return -1
			}
		}
	}
	return -1
}
