package mcpserver

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// How long a call to the agent may take. A missing agent fails at once
// (the socket refuses), so these bound only a live agent's work.
const (
	quickTimeout   = 15 * time.Second // status
	networkTimeout = 3 * time.Minute  // connect, discover, advertise, join: tor circuits
	syncTimeout    = 10 * time.Minute // as `mmogit sync`
)

// trustOut is a trust entry as `mmogit --json trust list` prints it.
type trustOut struct {
	PeerID       string `json:"peer_id"`
	OnionAddress string `json:"onion_address"`
	Key          string `json:"key"`
	Alias        string `json:"alias,omitempty"`
	Read         bool   `json:"read"`
	Write        bool   `json:"write"`
	Via          string `json:"via,omitempty"`
}

func toTrustOut(e trust.Entry) trustOut {
	return trustOut{PeerID: e.PeerID, OnionAddress: e.OnionAddress, Key: e.Key, Alias: e.Alias, Read: e.Read, Write: e.Write, Via: e.Via}
}

type trustListOut struct {
	Peers []trustOut `json:"peers"`
}

type trustAddIn struct {
	Peer  string `json:"peer" jsonschema:"onion address, peer ID or 64-hex key"`
	Read  bool   `json:"read,omitempty" jsonschema:"the peer receives everything you hold"`
	Write bool   `json:"write,omitempty" jsonschema:"the peer's messages are stored here (up to a daily quota); with neither read nor write, both"`
	Alias string `json:"alias,omitempty" jsonschema:"a name to show for the peer and to use as author"`
}

type trustRemoveIn struct {
	Peer string `json:"peer" jsonschema:"alias, onion address, peer ID or 64-hex key"`
}

type inviteIn struct {
	Read    bool   `json:"read,omitempty" jsonschema:"the joiner receives everything you hold"`
	Write   bool   `json:"write,omitempty" jsonschema:"the joiner's messages are stored here; with neither read nor write, both"`
	Expires string `json:"expires,omitempty" jsonschema:"how long the invite can be used, a Go duration such as 24h or 30m (default 24h)"`
}

// inviteOut is what `mmogit --json invite` prints, with a note when the
// joiner needs more than the line.
type inviteOut struct {
	Invite  string    `json:"invite"`
	Onion   string    `json:"onion_address"`
	Read    bool      `json:"read"`
	Write   bool      `json:"write"`
	Expires time.Time `json:"expires"`
	Note    string    `json:"note,omitempty"`
}

type joinIn struct {
	Invite string `json:"invite" jsonschema:"the invite line from the other agent's invite"`
	Read   bool   `json:"read,omitempty" jsonschema:"the inviter receives everything you hold"`
	Write  bool   `json:"write,omitempty" jsonschema:"the inviter's messages are stored here; with neither, both"`
	Alias  string `json:"alias,omitempty" jsonschema:"a name for the inviter"`
}

type discoverIn struct {
	Service string `json:"service" jsonschema:"the service name agents advertise"`
}

type connectIn struct {
	Address string `json:"address" jsonschema:"onion address, or an /onion3 or /ip4 multiaddr with /p2p/<peer id>"`
}

type syncIn struct {
	Peer string `json:"peer,omitempty" jsonschema:"peer ID, onion address or multiaddr; empty syncs with every trusted peer"`
}

type advertiseIn struct {
	Services []string `json:"services" jsonschema:"service names to publish for discovery"`
}

func (s *server) addTrustTools(srv *mcp.Server) {
	addTool(s, srv, "trust_list", "List trusted peers and their roles (read: receives everything you hold; write: its messages are stored here).", s.trustList)
	addTool(s, srv, "trust_add", "Give a peer roles (read, write; both when neither is set), with an optional alias.", s.trustAdd)
	addTool(s, srv, "trust_remove", "Take every role from a peer; it becomes a stranger again.", s.trustRemove)
	addTool(s, srv, "invite", "Make a one-time invite line another agent redeems with join; each side then trusts the other.", s.invite)
}

func (s *server) addNetworkTools(srv *mcp.Server) {
	addTool(s, srv, "status", "The running agent's status: onion address, Tor bootstrap, readiness, peers. Needs `mmogit tor start`.", s.status)
	addTool(s, srv, "discover", "Find agents advertising a service (verified advertisements). Needs the agent running.", s.discover)
	addTool(s, srv, "connect", "Connect to a peer over Tor and measure the round trip. Needs the agent running.", s.connect)
	addTool(s, srv, "sync", "Exchange memories with one peer, or with every trusted peer when peer is empty. Needs the agent running.", s.sync)
	addTool(s, srv, "advertise", "Publish services so other agents can discover this one. Needs the agent running.", s.advertise)
	addTool(s, srv, "join", "Redeem an invite line from another agent: both sides trust each other. Needs the agent running.", s.join)
}

func (s *server) trustList(_ context.Context, _ struct{}) (trustListOut, error) {
	out := trustListOut{Peers: []trustOut{}}
	l, err := trust.Load(s.dir)
	if err != nil {
		return out, err
	}
	for _, e := range l.Entries() {
		out.Peers = append(out.Peers, toTrustOut(e))
	}
	return out, nil
}

func (s *server) trustAdd(_ context.Context, in trustAddIn) (trustOut, error) {
	if in.Peer == "" {
		return trustOut{}, usagef("peer is empty")
	}
	if err := checkShort("peer", in.Peer); err != nil {
		return trustOut{}, err
	}
	if err := checkShort("alias", in.Alias); err != nil {
		return trustOut{}, err
	}
	if _, err := os.Stat(s.dir); err != nil {
		return trustOut{}, fmt.Errorf("config dir %s: %w; create an identity with `mmogit init`", s.dir, err)
	}
	l, err := trust.Load(s.dir)
	if err != nil {
		return trustOut{}, err
	}
	pub, err := l.Resolve(in.Peer)
	if err != nil {
		return trustOut{}, usagef("peer: %w", err)
	}
	if id, err := identity.Load(s.dir); err == nil && id.Public.Equal(pub) {
		return trustOut{}, usagef("trust: %s is this agent's own address", in.Peer)
	}
	read, write := in.Read, in.Write
	if !read && !write {
		read, write = true, true
	}
	e, err := trust.Set(s.dir, pub, read, write, in.Alias, "mcp trust_add")
	if err != nil {
		return trustOut{}, err
	}
	return toTrustOut(e), nil
}

func (s *server) trustRemove(_ context.Context, in trustRemoveIn) (trustOut, error) {
	if in.Peer == "" {
		return trustOut{}, usagef("peer is empty")
	}
	if err := checkShort("peer", in.Peer); err != nil {
		return trustOut{}, err
	}
	e, err := trust.Remove(s.dir, in.Peer)
	if err != nil {
		return trustOut{}, err
	}
	return toTrustOut(e), nil
}

func (s *server) invite(_ context.Context, in inviteIn) (inviteOut, error) {
	ttl := 24 * time.Hour
	if in.Expires != "" {
		d, err := time.ParseDuration(in.Expires)
		if err != nil {
			return inviteOut{}, usagef("expires: %w", err)
		}
		ttl = d
	}
	if ttl <= 0 {
		return inviteOut{}, usagef("expires %v must be positive", ttl)
	}
	if _, err := s.loadIdentity(); err != nil { // says how to make one
		return inviteOut{}, err
	}
	inv, note, err := invite.Issue(s.dir, in.Read, in.Write, ttl, time.Now())
	if err != nil {
		return inviteOut{}, err
	}
	return inviteOut{Invite: inv.String(), Onion: inv.Onion, Read: inv.Read, Write: inv.Write, Expires: inv.Expires, Note: note}, nil
}

func (s *server) status(ctx context.Context, _ struct{}) (localapi.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, quickTimeout)
	defer cancel()
	return s.api.Status(ctx)
}

func (s *server) discover(ctx context.Context, in discoverIn) (localapi.DiscoverResult, error) {
	if in.Service == "" {
		return localapi.DiscoverResult{}, usagef("service is empty")
	}
	if err := checkShort("service", in.Service); err != nil {
		return localapi.DiscoverResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	r, err := s.api.Discover(ctx, in.Service)
	if r.Ads == nil {
		r.Ads = []localapi.Advertisement{}
	}
	return r, err
}

func (s *server) connect(ctx context.Context, in connectIn) (localapi.ConnectResult, error) {
	if in.Address == "" {
		return localapi.ConnectResult{}, usagef("address is empty")
	}
	if err := checkShort("address", in.Address); err != nil {
		return localapi.ConnectResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	return s.api.Connect(ctx, in.Address)
}

func (s *server) sync(ctx context.Context, in syncIn) (localapi.SyncSummary, error) {
	if err := checkShort("peer", in.Peer); err != nil {
		return localapi.SyncSummary{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	rs, err := s.api.Sync(ctx, in.Peer)
	if err != nil {
		return localapi.SyncSummary{}, err
	}
	return localapi.Summarize(rs), nil
}

func (s *server) advertise(ctx context.Context, in advertiseIn) (localapi.Advertisement, error) {
	if len(in.Services) == 0 {
		return localapi.Advertisement{}, usagef("services is empty")
	}
	if err := checkList("services", in.Services); err != nil {
		return localapi.Advertisement{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	return s.api.Advertise(ctx, in.Services)
}

func (s *server) join(ctx context.Context, in joinIn) (localapi.JoinResult, error) {
	if len(in.Invite) > 4096 {
		return localapi.JoinResult{}, usagef("invite is %d bytes; an invite line is much shorter", len(in.Invite))
	}
	if _, err := invite.Parse(in.Invite); err != nil {
		return localapi.JoinResult{}, usagef("invite: %w", err)
	}
	if err := checkShort("alias", in.Alias); err != nil {
		return localapi.JoinResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, networkTimeout)
	defer cancel()
	return s.api.Join(ctx, localapi.JoinRequest{Invite: in.Invite, Read: in.Read, Write: in.Write, Alias: in.Alias})
}
