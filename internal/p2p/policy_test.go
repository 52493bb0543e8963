package p2p

import (
	"errors"
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

const (
	vecOnion = "/onion3/25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid:7420"
	ip4      = "/ip4/192.0.2.7/tcp/7420"
	ip6      = "/ip6/2001:db8::1/tcp/7420"
	dns4     = "/dns4/example.com/tcp/7420"
	dnsaddr  = "/dnsaddr/bootstrap.example.com"
	quic     = "/ip4/192.0.2.7/udp/7420/quic-v1"
	ws       = "/ip4/192.0.2.7/tcp/7420/ws"
	unspec   = "/ip4/0.0.0.0/tcp/7420"
	withP2P  = "/ip4/192.0.2.7/tcp/7420/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	// An onion name that only the DNS path could reach.
	dnsOnion = "/dns4/25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion/tcp/80"
)

func mas(t *testing.T, ss ...string) []ma.Multiaddr {
	t.Helper()
	out := make([]ma.Multiaddr, len(ss))
	for i, s := range ss {
		out[i] = ma.StringCast(s)
	}
	return out
}

func TestClassify(t *testing.T) {
	tests := []struct {
		addr string
		want AddrClass
	}{
		{vecOnion, ClassOnion},
		{ip4, ClassDirect},
		{ip6, ClassDirect},
		{withP2P, ClassDirect},
		{unspec, ClassDirect},
		{dns4, ClassDNS},
		{dnsaddr, ClassDNS},
		{dnsOnion, ClassDNS},
		{quic, ClassOther},
		{ws, ClassOther},
		{"/ip4/192.0.2.7/udp/53", ClassOther},
		{vecOnion + "/tcp/1", ClassOther},
	}
	for _, tt := range tests {
		if got := Classify(ma.StringCast(tt.addr)); got != tt.want {
			t.Errorf("Classify(%s) = %d, want %d", tt.addr, got, tt.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	// addr → allowed in direct, tor, hybrid.
	tests := []struct {
		addr                string
		direct, tor, hybrid bool
	}{
		{vecOnion, false, true, true},
		{ip4, true, false, true},
		{ip6, true, false, true},
		{dns4, false, false, false},
		{dnsaddr, false, false, false},
		{dnsOnion, false, false, false},
		{quic, false, false, false},
		{ws, false, false, false},
	}
	for _, tt := range tests {
		a := ma.StringCast(tt.addr)
		for _, c := range []struct {
			m    Mode
			want bool
		}{{ModeDirect, tt.direct}, {ModeTor, tt.tor}, {ModeHybrid, tt.hybrid}} {
			if got := Allowed(c.m, a); got != c.want {
				t.Errorf("Allowed(%s, %s) = %v, want %v", c.m, tt.addr, got, c.want)
			}
		}
	}
}

func TestEffectiveMode(t *testing.T) {
	tests := []struct {
		global, override, want Mode
		err                    error
	}{
		{ModeTor, "", ModeTor, nil},
		{ModeDirect, "", ModeDirect, nil},
		{ModeHybrid, "", ModeHybrid, nil},
		{ModeDirect, ModeTor, ModeTor, nil},
		{ModeDirect, ModeHybrid, ModeHybrid, nil},
		{ModeHybrid, ModeDirect, ModeDirect, nil},
		{ModeHybrid, ModeTor, ModeTor, nil},
		{ModeTor, ModeHybrid, ModeTor, nil}, // tor is a ceiling
		{ModeTor, ModeTor, ModeTor, nil},
		{ModeTor, ModeDirect, "", ErrPolicy},
	}
	for _, tt := range tests {
		got, err := EffectiveMode(tt.global, tt.override)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("EffectiveMode(%q, %q) = %q, %v; want %q, %v", tt.global, tt.override, got, err, tt.want, tt.err)
		}
	}
}

func TestSplit(t *testing.T) {
	all := mas(t, ip4, vecOnion, dns4, ip6, quic)
	tests := []struct {
		mode                   Mode
		onion, direct, refused []string
	}{
		{ModeTor, []string{vecOnion}, nil, []string{ip4, dns4, ip6, quic}},
		{ModeDirect, nil, []string{ip4, ip6}, []string{vecOnion, dns4, quic}},
		{ModeHybrid, []string{vecOnion}, []string{ip4, ip6}, []string{dns4, quic}},
	}
	for _, tt := range tests {
		o, d, r := Split(tt.mode, all)
		for _, c := range []struct {
			name      string
			got       []ma.Multiaddr
			wantAddrs []string
		}{{"onion", o, tt.onion}, {"direct", d, tt.direct}, {"refused", r, tt.refused}} {
			if !slices.EqualFunc(c.got, mas(t, c.wantAddrs...), ma.Multiaddr.Equal) {
				t.Errorf("Split(%s) %s = %v, want %v", tt.mode, c.name, c.got, c.wantAddrs)
			}
		}
	}
}

func TestAnnounce(t *testing.T) {
	listen := mas(t, vecOnion, "/ip4/127.0.0.1/tcp/4001", unspec, dns4, quic)
	tests := []struct {
		mode Mode
		want []string
	}{
		{ModeTor, []string{vecOnion}},
		{ModeHybrid, []string{vecOnion, "/ip4/127.0.0.1/tcp/4001"}},
		{ModeDirect, []string{vecOnion, "/ip4/127.0.0.1/tcp/4001"}},
	}
	for _, tt := range tests {
		if got := Announce(tt.mode, listen); !slices.EqualFunc(got, mas(t, tt.want...), ma.Multiaddr.Equal) {
			t.Errorf("Announce(%s) = %v, want %v", tt.mode, got, tt.want)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"tor": ModeTor, " Direct ": ModeDirect, "HYBRID": ModeHybrid} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "onion", "i2p"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) succeeded", in)
		}
	}
}
