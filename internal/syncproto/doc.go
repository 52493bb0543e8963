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
// (`mmogit p2p listen/connect --wire reference`). Bodies are at most 10 MiB; a header
// claiming more is refused before anything is allocated ([ErrFrameTooLarge]).
// Each side stops the session when the peer sends nothing it is waiting for
// during the idle timeout (30 s by default, [ErrTimeout]).
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
// Unknown message types are protocol violations ([ErrProtocol]).
package syncproto
