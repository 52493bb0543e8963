package agent

import (
	"context"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/p2p"
	"github.com/mmogit/mmogit/internal/socks"
	"github.com/mmogit/mmogit/internal/syncproto"
)

func TestParseTarget(t *testing.T) {
	alice := identity.FromSeed(make([]byte, 32))
	onion := alice.OnionAddress()
	bare := strings.TrimSuffix(onion, ".onion")
	pid := alice.PeerID().String()
	tests := []struct {
		in       string
		wantAddr string // first multiaddr, "" for none
		wantErr  string
	}{
		{onion, "/onion3/" + bare + ":7420", ""},
		{strings.ToUpper(bare), "/onion3/" + bare + ":7420", ""},
		{onion + ":9000", "/onion3/" + bare + ":9000", ""},
		{"/onion3/" + bare + ":7420", "/onion3/" + bare + ":7420", ""},
		{"/onion3/" + bare + ":7420/p2p/" + pid, "/onion3/" + bare + ":7420", ""},
		{"/ip4/127.0.0.1/tcp/4001/p2p/" + pid, "/ip4/127.0.0.1/tcp/4001", ""},
		{pid, "", ""},
		{"", "", "empty"},
		{onion + ":99999", "", "bad port"},
		{"a" + onion[1:], "", "not a valid onion"},
		{"/ip4/127.0.0.1/tcp/4001", "", "no /p2p"},
		{"/onion3/" + bare + ":7420/p2p/12D3KooWRUekJvvX35AfQXUNUkr1RX2Fza5wXpWoYxv2uuLXmRf9", "", "does not match"},
		{"example.com:7420", "", "neither"},
		{"/not/a/multiaddr", "", "bad multiaddr"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ai, _, err := parseTarget(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ai.ID.String() != pid {
				t.Errorf("peer = %s, want %s", ai.ID, pid)
			}
			got := ""
			if len(ai.Addrs) > 0 {
				got = ai.Addrs[0].String()
			}
			if got != tt.wantAddr {
				t.Errorf("addr = %q, want %q", got, tt.wantAddr)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("sync: %w", &p2p.PolicyError{Mode: p2p.ModeTor}), "policy"},
		{&socks.Error{Kind: socks.ErrOnionServiceUnreachable}, "onion_unreachable"},
		{fmt.Errorf("dial: %w", &socks.Error{Kind: socks.ErrDaemonNotRunning}), "tor_not_running"},
		{&socks.Error{Kind: socks.ErrOnionAuth}, "onion_auth"},
		{&socks.Error{Kind: socks.ErrBadAddress}, "bad_address"},
		{context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("store: %w", syscall.ENOSPC), "disk_full"},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), "connection_lost"},
		{fmt.Errorf("%w: peer stalled: nothing received for 30s while waiting for hello", syncproto.ErrTimeout), "peer_stalled"},
		{fmt.Errorf("%w: header says 20000000 bytes, limit 10485760", syncproto.ErrFrameTooLarge), "frame_too_large"},
		{fmt.Errorf("%w: memory response without a request", syncproto.ErrProtocol), "protocol_error"},
		{fmt.Errorf("syncproto: sync: %w", context.DeadlineExceeded), "timeout"},
		{fmt.Errorf("something else"), "error"},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
