// Package bench measures mmogit against the raw transports it is built on,
// side by side in one run on one private Tor network (issue "Performance
// against raw tor"). Every measurement yields a [Row]: our number, the
// baseline measured the same way through the same tor processes (or none),
// and their ratio. `mmogit bench` prints the rows as a table or JSON.
//
// What is compared with what:
//
//   - connect_onion: a libp2p host (the agent's recipe from internal/p2p)
//     dials another over its onion service the way the agent's sync does
//     (no identify wait, a lazily negotiated stream whose protocol
//     proposal rides with the first byte) and gets the first byte back,
//     vs a raw SOCKS connect through the same client tor to an onion
//     service in front of a TCP echo server plus one request/response.
//     Each round uses fresh SOCKS credentials, so tor builds a new
//     rendezvous circuit both times (the descriptor is cached).
//   - sync_small: one new memory on each side of stores sharing the rest
//     (10,000+), a new client host (new circuit) connecting and syncing
//     until both stored, vs a raw SOCKS connect plus one round trip;
//     rtts_sync_small is the round trips the protocol itself counted
//     (syncproto Stats.RoundTrips), raw = 1.
//
// Connect, sync_small and the full syncs are medians of interleaved rounds
// (Options.Iterations, Options.SyncRounds; 5 by default), with min and max;
// rows with a target from the issue say whether this run met it. Options.
// Profile (`--profile public|slow`) runs everything on the shaped private
// network (testnet.Profile).
//   - sync_onion / sync_direct: syncproto between two git memory stores over
//     a libp2p stream (onion or TCP loopback), vs the same number of bytes
//     pushed raw through a SOCKS stream (or a TCP socket) to a sink. Both
//     count one direction, holder → receiver: the bytes the holder's sync
//     sent, over the time until the receiver has stored them (each round
//     into a new empty store); the
//     receiver's much smaller replies are in the note, not the figure. The
//     stream_* rows push those bytes over a bare libp2p stream on the same
//     connection, which separates libp2p's cost from the sync protocol's
//     and the store's. sync_incremental_bytes counts both directions.
//   - startup_published: a real `mmogit agent run` process (internal/cluster)
//     until its onion service is published, vs a bare tor publishing one.
//   - discover_onion_N<n> (and discover_onion, the smallest n; default 5,
//     10, 20): n real agents, each with its own tor, growing from one size
//     to the next; the newest agent's `discover` until it lists all n-1
//     others, then the median of three more calls, vs as many agent
//     processes over direct TCP.
//   - discover_direct_N<n> (up to 100): the same on in-process libp2p hosts
//     with the agent's discovery over TCP loopback, to show how discovery
//     grows with n; the baseline is the smallest n.
//   - agent_rss, agent_goroutines, tor_rss: the first agent idle (published,
//     no peers), from its status (rss_bytes, goroutines) and /proc for its
//     tor; the *_20peers rows are the same agent with 20 peers connected
//     (the other agents plus in-process onion clients), against idle.
//   - onion_encode_ns, onion_verify_ns, ad_verify_per_s: in-process loops
//     (also `go test -bench` here and in internal/onion).
//
// Run starts and stops every process it needs; nothing outlives it. A
// default run took 1 min 50 s on a quiet 2-core machine and 2 min 56 s
// with other work on its cores; the latter split: the network ~8 s, the 20
// onion agents (each its own tor) ~36 s from the first start to the last
// discovery, the 20 direct agents ~14 s, growing the in-process direct
// network to 100 hosts 17-55 s (setup, not timed), the two 10,000-memory
// syncs ~45 s.
package bench
