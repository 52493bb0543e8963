// Package refcompat tests compatibility with the original (Rust) mmogit,
// RCALabs/mmogit at commit 02b9154: identity, the message and memory files
// on its branches, its encrypted envelopes (package refenvelope) and its
// direct p2p frames (package refwire).
//
// Two kinds of tests live here. The plain ones read a small repository the
// reference wrote (testdata/reference-repo.bundle, testdata/reference-envelope.json,
// both made with the real reference binary by identity
// [FixturePhrase]) and run in every `make test`. The ones under the build
// tag "reference" run the real reference binary, built from
// third_party/reference-mmogit by `make test-reference`, against mmogit in
// both directions.
package refcompat

// FixturePhrase is the 24-word phrase of the identity that wrote the
// fixtures (the BIP39 test vector of all-zero entropy): a public test key.
const FixturePhrase = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art"

// FixtureAuthor is FixturePhrase's public key (as the reference's init printed it).
const FixtureAuthor = "1de352e44cd333672593f2334a730e180aaf290de89aa16d480de594e34e2961"
