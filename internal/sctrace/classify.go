package sctrace

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Class is where a call sent traffic, as far as anonymity is concerned.
type Class string

// Destination classes.
const (
	UnixConfigDir Class = "unix:config-dir"   // a unix socket inside the agent's config dir (tor control, local API)
	TorSocksUnix  Class = "unix:tor-socks"    // its own tor's SOCKS unix socket (Policy.SocksPaths)
	UnixOther     Class = "unix:other"        // any other unix socket (nscd, syslog, abstract names)
	TorSocks      Class = "inet:tor-socks"    // 127.0.0.1:<own tor's SOCKS port>
	TorControl    Class = "inet:tor-control"  // 127.0.0.1:<own tor's control port> (an attached tor's; the managed tor has none)
	Loopback      Class = "inet:loopback"     // another loopback port: a relay, another agent, a direct dial
	Inet          Class = "inet:other"        // an IPv4 address off this host
	Inet6         Class = "inet6"             // any IPv6 address
	DNS           Class = "dns"               // port 53, any family: a DNS query outside tor
	Netlink       Class = "netlink"           // the kernel (interface listing); not network traffic
	Unspec        Class = "unspec"            // connect(AF_UNSPEC): dissolves a UDP association
	Connected     Class = "connected-socket"  // a send naming no address: goes where the socket was connected
	OtherFamily   Class = "other-family"      // AF_PACKET, AF_BLUETOOTH, ...
	Unparsed      Class = "unparsed-sockaddr" // strace printed an address we could not decode
)

// Allowed reports whether a tor-only agent may send to this class: its own
// tor, its own unix sockets, the kernel over netlink, and sockets already
// connected to one of those.
func (c Class) Allowed() bool {
	switch c {
	case UnixConfigDir, TorSocksUnix, TorSocks, TorControl, Netlink, Connected:
		return true
	}
	return false
}

// Policy describes the agent whose traffic is checked.
type Policy struct {
	ConfigDir    string   // absolute; unix sockets under it are the agent's own
	SocksPaths   []string // its tor's SOCKS unix sockets
	SocksPorts   []int    // its tor's SOCKS ports on 127.0.0.1 (several if tor restarted)
	ControlPorts []int    // its tor's TCP control ports, if any
}

// Classify puts a destination in its class.
func (p Policy) Classify(a Addr) Class {
	switch a.Family {
	case AFUnix:
		if a.Path != "" && slices.Contains(p.SocksPaths, filepath.Clean(a.Path)) {
			return TorSocksUnix
		}
		if a.Path != "" && !strings.HasPrefix(a.Path, "@") && within(p.ConfigDir, a.Path) {
			return UnixConfigDir
		}
		return UnixOther
	case AFNetlink:
		return Netlink
	case AFUnspec:
		return Unspec
	case AFInet, AFInet6:
		switch {
		case a.Port == 53:
			return DNS
		case a.Family == AFInet6 && !a.IP.Is4In6():
			return Inet6
		}
		ip := a.IP.Unmap()
		switch {
		case ip.String() == "127.0.0.1" && slices.Contains(p.SocksPorts, a.Port):
			return TorSocks
		case ip.String() == "127.0.0.1" && slices.Contains(p.ControlPorts, a.Port):
			return TorControl
		case ip.IsLoopback():
			return Loopback
		}
		return Inet
	}
	return OtherFamily
}

// within reports whether path is dir or below it.
func within(dir, path string) bool {
	if dir == "" {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// Finding is one destination of one call.
type Finding struct {
	Event Event
	Addr  *Addr // nil for a send on a connected socket
	Class Class
	Tor   bool // made by a task of the tor subtree
}

func (f Finding) String() string {
	who := "agent"
	if f.Tor {
		who = "tor"
	}
	dst := "(connected socket)"
	switch {
	case f.Addr != nil:
		dst = f.Addr.String()
	case f.Class == Unparsed:
		dst = "(" + f.Event.Args + ")"
	}
	return fmt.Sprintf("line %d: %s task %d %s → %s [%s] = %s", f.Event.Line, who, f.Event.PID, f.Event.Syscall, dst, f.Class, f.Event.Ret)
}

// Analyze classifies the destination of every connect/sendto/sendmsg/
// sendmmsg in the trace and says whether a task of the subtree of a
// program that mark accepts (tor) made it.
func Analyze(t *Tree, p Policy, mark func(path string) bool) []Finding {
	var out []Finding
	for _, k := range t.Tasks {
		for _, e := range k.Events {
			switch e.Syscall {
			case "connect", "sendto", "sendmsg", "sendmmsg":
			default:
				continue
			}
			tor := t.Marked(k, e.Line, mark)
			addrs, err := e.Destinations()
			if err != nil {
				out = append(out, Finding{Event: e, Class: Unparsed, Tor: tor})
				continue
			}
			if len(addrs) == 0 {
				out = append(out, Finding{Event: e, Class: Connected, Tor: tor})
			}
			for i := range addrs {
				out = append(out, Finding{Event: e, Addr: &addrs[i], Class: p.Classify(addrs[i]), Tor: tor})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Event.Line < out[j].Event.Line })
	return out
}

// Count tallies findings of the agent (tor false) or of tor by "class
// syscall", e.g. "inet:tor-socks connect" → 12.
func Count(fs []Finding, tor bool) map[string]int {
	m := map[string]int{}
	for _, f := range fs {
		if f.Tor == tor {
			m[string(f.Class)+" "+f.Event.Syscall]++
		}
	}
	return m
}
