// Package discovery lets mmogit agents find each other by service.
//
// An agent publishes a signed Advertisement (its key, its onion address,
// the services it offers, optional direct addresses, a sequence number and
// a validity window) as a record in a private Kademlia DHT
// (go-libp2p-kad-dht, protocol prefix "/mmogit", server mode, no public
// bootstrap peers), and a provider record for each service under
// ServiceCID(service). Discover finds the providers of a service, fetches
// each provider's advertisement and keeps only those that verify and list
// the service.
//
// The advertisement is verifiable end to end: the onion address decodes to
// the key that signed it, and the signature covers a domain-separated,
// length-prefixed byte encoding (not JSON) described in
// docs/advertisement.md, so another implementation can produce and check
// the same bytes. Every DHT node validates records with Validator, so a
// forged, expired or misfiled advertisement is refused wherever it is sent,
// and Validator.Select prefers the highest sequence number, so a replayed
// older advertisement never replaces a newer one.
package discovery
