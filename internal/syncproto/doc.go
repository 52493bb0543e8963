// Package syncproto is the mmogit memory sync protocol. It runs over any
// io.ReadWriter (a libp2p stream, a Tor circuit, a TCP connection, a pipe)
// and is symmetric: the dialer and the listener both call [Sync].
//
// # Wire format
//
// A frame is a 4-byte big-endian body length followed by a JSON body
//
//	{"msg_type": "<type>", "payload": <object>, "signature": null}
//
// This borrows the field names of the reference (Rust) mmogit's
// NetworkMessage but is not its format: there msg_type is a serde enum
// ({"Hello": {"pubkey": …}} or "Ping") and payload an array of bytes, so
// neither side parses the other's frames, and the exchange below is
// mmogit's own. The reference's frames are spoken by package refwire
// (`mmogit p2p listen/connect --wire reference`). Version 3 adds "hop", the
// frame's causal depth: one more than the deepest hop its sender had
// received, from which [Stats].RoundTrips is counted. Bodies are at most
// 10 MiB; a header
// claiming more is refused before anything is allocated ([ErrFrameTooLarge]).
// The idle timeout (30 s by default, [ErrTimeout]) is a no-progress
// timeout: a session fails when no byte moves either way for that long,
// whether it waits for a frame, reads one, or writes one the peer does not
// read. A large frame on a slow circuit that keeps moving never times out.
//
// # Exchange
//
// Both sides send, without waiting for each other:
//
//  1. Hello {"pubkey": "<64 hex or empty>", "nonce": "<64 hex>", "version": 1}
//  2. Auth {"signature": "<128 hex>"}, only if its Hello named a pubkey.
//     The signature is Ed25519 by that key over
//     "mmogit-sync-auth-v1\x00" || peer nonce (32 bytes) || own nonce
//     (32 bytes) || own pubkey (32 bytes). Signing the peer's fresh nonce
//     proves the key is held now; it does not protect the channel, so on
//     plain TCP an active relay could still sit in the middle.
//  3. Summary {"authors": {"<author hex>": {"count": N, "digest": "<hex>"}},
//     "more": bool}, where digest = SHA-256("mmogit-sync-summary-v1\x00" ||
//     id1 || "\n" || id2 || "\n" ...) over the author's sorted message IDs
//     (memory.Message.ID). Large summaries are split, "more" on all but
//     the last part.
//
// Both now know the same set D of authors whose (count, digest) differ. For
// each author in D it holds, a side sends Ids {"author", "ids": [sorted],
// "more"} (split as needed); each side then asks for the IDs it lacks with
// MemoryRequest {"ids": [at most 512]} and keeps at most 4 requests
// outstanding. Each request is answered, in order, by exactly one
// MemoryResponse {"messages": [memory.Message...], "deferred": [ids]}:
// messages up to about 4 MiB, the rest listed as deferred and asked for
// again (a response that defers must carry at least one message). IDs the
// peer no longer has are simply absent. Received messages go through the
// store's Add, which verifies every signature before storing; forgeries and
// unrequested messages are counted as rejected and never stored.
//
// A side sends Done {} when it has nothing more to ask for, and Bye
// {"reason"} once it has both sent and received Done; nothing follows Bye.
// Ping {"nonce"} may arrive at any time and is answered with Pong {"nonce"};
// a peer that only pings (see [Ping]) sends Ping, reads until Pong, and
// leaves with Bye without a Hello. A sync with nothing new costs only Hello,
// Auth, Summary, Done and Bye in each direction.
//
// MemoryRequest may carry "max_bytes" (version 3): the requester measures
// the throughput of the responses so far and asks for about 2 s of it
// (256 KiB before the first measurement); the responder clamps it to
// [64 KiB, 4 MiB]. On a slow circuit a response then takes seconds, not
// minutes, and the sender's silence while its buffered data drains stays far
// below the idle timeout.
//
// # Version 3: one round trip for a small difference
//
// Hello carries "version": 3 and, when the store does not depend on the
// peer's proof (no Options.Access) and the summary fits one part, the whole
// Summary, so it is sent as soon as the stream opens and crosses the peer's
// in the first half round trip. The last Summary part (in Hello or not)
// carries "sketch": an invertible Bloom lookup table of every message ID
// the side shows (48 cells; see sketch.go). Subtracting the two sketches
// yields the symmetric difference when it holds up to about 20 IDs; both
// sides compute the same thing, so without another message:
//
//   - difference decoded, at most 8 IDs each way: each side sends Push
//     {"messages": [...]} with what the peer lacks; nobody requests;
//   - decoded but larger: each side requests the IDs it lacks directly;
//   - not decoded: the bucket reconciliation above.
//
// A side acts on the peer's summary (ID lists, pushes) only once the peer
// has proven its key with Auth, or at once when the transport already
// authenticated it (Options.TransportAuthenticated, libp2p). Pushed
// messages are taken only if the sketches named them, and Add verifies
// every signature as for a response. Done is folded into Bye: Bye means
// "I ask for nothing more, and I hold everything I asked for or was
// promised (pushes stored)"; a side still answers requests after its own
// Bye and finishes once it has sent Bye and received the peer's, so when
// either side returns both have stored what moved. With the transport
// authenticated, one new memory on each side costs Hello, Auth, Push and
// Bye each way. Over a stream the dialer opens, its Hello reaches the
// listener at half a round trip; the listener's push reaches the dialer at
// 1, the dialer's push the listener at 1.5, and the listener's Bye
// confirming it the dialer at 2 (1 when only the listener had news).
//
// A version 3 side speaks to older peers: a version 1 or 2 Hello ignores
// the embedded summary, and the lower version runs (Summary frames after
// Auth, Done then Bye).
//
// Unknown message types are protocol violations ([ErrProtocol]).
package syncproto
