// Package localapi is the agent's local API: HTTP + JSON over a unix socket
// in the config directory (mode 0600, nothing on TCP). The agent serves it
// with [NewServer]; the CLI talks to it with [Client]. The wire types below
// are what `--json` prints.
package localapi

import "time"

// Version is sent in every request and response so client/agent skew can be
// reported instead of failing strangely.
const Version = "1"

// SocketName is the API socket inside the config directory.
const SocketName = "agent.sock"

// Status is GET /v1/status.
type Status struct {
	PID               int       `json:"pid"`
	PeerID            string    `json:"peer_id"`
	Pubkey            string    `json:"pubkey"`
	OnionAddress      string    `json:"onion_address"`
	Transport         string    `json:"transport"`
	BootstrapProgress int       `json:"bootstrap_progress"`
	BootstrapSummary  string    `json:"bootstrap_summary,omitempty"`
	BootstrapWarning  string    `json:"bootstrap_warning,omitempty"`
	Published         bool      `json:"published"`
	PublishedAt       time.Time `json:"published_at,omitzero"`
	PoW               bool      `json:"pow"`
	TorVersion        string    `json:"tor_version,omitempty"`
	TorRestarts       int       `json:"tor_restarts"`
	Listen            []string  `json:"listen"`
	PeersConnected    int       `json:"peers_connected"`
	PeersKnown        int       `json:"peers_known"`
	Services          []string  `json:"services,omitempty"`
	StartedAt         time.Time `json:"started_at"`
	// Goroutines is runtime.NumGoroutine() of the agent process, and
	// RSSBytes its resident set (from /proc/self/statm; 0 if unavailable):
	// what `mmogit bench` reports as the agent's cost.
	Goroutines int   `json:"goroutines,omitempty"`
	RSSBytes   int64 `json:"rss_bytes,omitempty"`
	// Ready is true once the agent can serve peers: the onion service is
	// published whenever the agent runs tor (tor or hybrid mode, or a
	// peer_transport override to either under direct), else the TCP
	// listener is up.
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// ConnectRequest is POST /v1/connect.
type ConnectRequest struct {
	// Target is a bare onion address, an /onion3 or /ip4 multiaddr with
	// /p2p/<id>, or a full multiaddr.
	Target string `json:"target"`
}

// ConnectResult is the reply to ConnectRequest.
type ConnectResult struct {
	PeerID    string  `json:"peer_id"`
	Addr      string  `json:"addr"`
	Transport string  `json:"transport"`
	RTTMillis float64 `json:"rtt_ms"`
	ConnectMs float64 `json:"connect_ms"`
}

// SyncRequest is POST /v1/sync. An empty Peer syncs with every trusted
// peer and every recipient of this agent's sealed messages.
type SyncRequest struct {
	Peer string `json:"peer,omitempty"`
}

// SyncProgress reports messages arriving from one peer during a sync.
type SyncProgress struct {
	PeerID   string `json:"peer_id"`
	Received int    `json:"received"`
	Wanted   int    `json:"wanted"` // grows as the peer's id lists arrive
}

// SyncEvent is one line of POST /v1/sync?progress=1, a stream of JSON
// lines: progress lines, then one line with the results or an error.
type SyncEvent struct {
	Progress *SyncProgress `json:"progress,omitempty"`
	Results  []SyncResult  `json:"results,omitempty"`
	Error    *Error        `json:"error,omitempty"`
}

// SyncResult is one peer's outcome.
type SyncResult struct {
	PeerID   string `json:"peer_id"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	Rejected int    `json:"rejected"`
	// Refused counts messages the peer offered that it may not store
	// here (no write role, or over its quota).
	Refused      int     `json:"refused"`
	BytesSent    int64   `json:"bytes_sent"`
	BytesRecv    int64   `json:"bytes_received"`
	DurationMs   float64 `json:"duration_ms"`
	Error        string  `json:"error,omitempty"`
	ErrorKind    string  `json:"error_kind,omitempty"`
	RetryAfterMs int64   `json:"retry_after_ms,omitempty"`
}

// Peer is an element of GET /v1/peers.
type Peer struct {
	PeerID       string    `json:"peer_id"`
	OnionAddress string    `json:"onion_address,omitempty"`
	Addrs        []string  `json:"addrs"`
	Transport    string    `json:"transport"`
	Connected    bool      `json:"connected"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	Services     []string  `json:"services,omitempty"`
	// LastSync is when the last sync session with the peer (opened by
	// either side) completed, and LastSyncCounts what it moved.
	LastSync       time.Time   `json:"last_sync,omitzero"`
	LastSyncCounts *SyncCounts `json:"last_sync_counts,omitempty"`
	// Read and Write are the roles the trust list gives the peer; Alias
	// its name there.
	Read  bool   `json:"read"`
	Write bool   `json:"write"`
	Alias string `json:"alias,omitempty"`
}

// SyncCounts is what one sync session moved: messages received and
// stored, sent, rejected (failed verification) and refused (the peer may
// not store them here).
type SyncCounts struct {
	Received int `json:"received"`
	Sent     int `json:"sent"`
	Rejected int `json:"rejected"`
	Refused  int `json:"refused"`
}

// AdvertiseRequest is POST /v1/advertise.
type AdvertiseRequest struct {
	Services []string `json:"services"`
}

// Advertisement is a verified advertisement as printed by discover.
type Advertisement struct {
	Pubkey       string    `json:"pubkey"`
	OnionAddress string    `json:"onion_address"`
	PeerID       string    `json:"peer_id"`
	Services     []string  `json:"services"`
	Addrs        []string  `json:"addrs,omitempty"`
	Seq          uint64    `json:"seq"`
	Timestamp    time.Time `json:"timestamp"`
	Expires      time.Time `json:"expires"`
	AgeSeconds   float64   `json:"age_s"`
}

// DiscoverResult is GET /v1/discover?service=S.
type DiscoverResult struct {
	Service    string          `json:"service"`
	Ads        []Advertisement `json:"ads"`
	Dropped    int             `json:"dropped"`
	DropErrors []string        `json:"drop_errors,omitempty"`
	DurationMs float64         `json:"duration_ms"`
}

// Error is the body of every non-2xx reply. Kind, when set, is one of:
// bad_request, bad_address, tor_not_running, onion_unreachable (retry
// later), onion_auth, circuit_failed, socks_error, timeout,
// connection_lost, disk_full, policy (the transport policy forbids every
// address given, e.g. an IP address on a tor-only agent), peer_stalled
// (the peer sent or read nothing for the sync idle timeout; retry later),
// protocol_error (the peer broke the sync protocol; retrying will not
// help), frame_too_large (the peer sent a frame over 10 MB), error.
// SyncResult.ErrorKind uses the same kinds.
type Error struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}

// RotateResult is POST /v1/rotate: new circuits for new streams.
type RotateResult struct {
	// DeferredMs is how long the request waited for tor's 10 s NEWNYM
	// rate limit.
	DeferredMs float64 `json:"deferred_ms"`
}

// JoinRequest is POST /v1/join: redeem an invite line. Read and Write are
// the roles this agent gives the inviter (both when neither is set).
type JoinRequest struct {
	Invite string `json:"invite"`
	Read   bool   `json:"read,omitempty"`
	Write  bool   `json:"write,omitempty"`
	Alias  string `json:"alias,omitempty"`
}

// JoinResult says who was joined and the roles on each side.
type JoinResult struct {
	PeerID       string `json:"peer_id"`
	OnionAddress string `json:"onion_address"`
	// Granted are the roles the inviter gave this agent.
	GrantedRead  bool `json:"granted_read"`
	GrantedWrite bool `json:"granted_write"`
	// Trusted are the roles this agent gave the inviter.
	TrustedRead  bool `json:"trusted_read"`
	TrustedWrite bool `json:"trusted_write"`
}
