// Package bench measures mmogit against the raw transports it is built on,
// side by side in one run on one private Tor network (issue "Performance
// against raw tor"). Every measurement yields a [Row]: our number, the
// baseline measured the same way through the same tor processes (or none),
// and their ratio. `mmogit bench` prints the rows as a table or JSON.
//
// What is compared with what:
//
//   - connect_onion: a libp2p host (the agent's recipe from internal/p2p)
//     dials another over its onion service and gets the first byte back on
//     a new stream, vs a raw SOCKS connect through the same client tor to
//     an onion service in front of a TCP echo server, until the first
//     echoed byte. Each iteration uses fresh SOCKS credentials, so tor
//     builds a new rendezvous circuit both times (the descriptor is cached).
//   - sync_onion / sync_direct: syncproto between two git memory stores over
//     a libp2p stream (onion or TCP loopback), vs the same number of bytes
//     pushed raw through a SOCKS stream (or a TCP socket) to a sink. The
//     stream_* rows push those bytes over a bare libp2p stream on the same
//     connection, which separates libp2p's cost from the sync protocol's
//     and the store's.
//   - startup_published, discover_onion, agent_rss: real `mmogit agent run`
//     processes (internal/cluster), vs a bare tor publishing a service.
//
// Run starts and stops every process it needs; nothing outlives it.
package bench
