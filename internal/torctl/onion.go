package torctl

import (
	"context"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// OnionFlag is an ADD_ONION flag (control-spec §3.27).
type OnionFlag string

// The ADD_ONION flags tor 0.4.8/0.4.9 know.
const (
	FlagDiscardPK              OnionFlag = "DiscardPK"
	FlagDetach                 OnionFlag = "Detach"
	FlagV3Auth                 OnionFlag = "V3Auth"
	FlagNonAnonymous           OnionFlag = "NonAnonymous"
	FlagMaxStreamsCloseCircuit OnionFlag = "MaxStreamsCloseCircuit"
)

var knownFlags = []OnionFlag{FlagDiscardPK, FlagDetach, FlagV3Auth, FlagNonAnonymous, FlagMaxStreamsCloseCircuit}

// PortMapping maps a virtual port of the onion service to a local target.
type PortMapping struct {
	Virtual int
	// Target is "host:port", "unix:/path" or empty (same port on
	// 127.0.0.1).
	Target string
}

// PoWParams turns on the proof-of-work DoS defence (tor >= 0.4.9 accepts it
// in ADD_ONION). Zero values leave tor's defaults.
type PoWParams struct {
	QueueRate  int
	QueueBurst int
}

// AddOnionRequest describes an ADD_ONION command.
type AddOnionRequest struct {
	// Key is the 64-byte expanded ed25519 key (see ExpandedKey); nil asks
	// tor to generate one (NEW:ED25519-V3).
	Key          []byte
	Ports        []PortMapping
	Flags        []OnionFlag
	MaxStreams   int
	ClientAuthV3 []string // base32 x25519 public keys; adds FlagV3Auth
	PoW          *PoWParams
}

// AddOnionResult is tor's answer to ADD_ONION.
type AddOnionResult struct {
	ServiceID  string // the address without ".onion"
	PrivateKey string // "ED25519-V3:<base64>" unless DiscardPK or a key was given
}

// ExpandedKey turns a 32-byte ed25519 seed into the 64-byte expanded key
// ADD_ONION wants: SHA-512(seed) with the scalar half clamped (h[0] &= 248,
// h[31] &= 127, h[31] |= 64). Unclamped, tor accepts the key but publishes
// a different address.
func ExpandedKey(seed []byte) ([]byte, error) {
	if len(seed) != 32 {
		return nil, fmt.Errorf("torctl: ed25519 seed is %d bytes, want 32", len(seed))
	}
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return h[:], nil
}

// buildAddOnion builds the command line (control-spec §3.27):
//
//	"ADD_ONION" SP KeyType ":" KeyBlob
//	        [SP "Flags=" Flag *("," Flag)]
//	        [SP "MaxStreams=" NumStreams]
//	        [SP "PoWDefensesEnabled=1" ...]
//	        1*(SP "Port=" VirtPort ["," Target])
//	        *(SP "ClientAuthV3=" V3Key) CRLF
func buildAddOnion(req AddOnionRequest) (string, error) {
	var sb strings.Builder
	sb.WriteString("ADD_ONION ")
	switch len(req.Key) {
	case 0:
		sb.WriteString("NEW:ED25519-V3")
	case 64:
		sb.WriteString("ED25519-V3:" + base64.StdEncoding.EncodeToString(req.Key))
	default:
		return "", fmt.Errorf("%w: expanded key is %d bytes, want 64", ErrBadArgument, len(req.Key))
	}
	flags := slices.Clone(req.Flags)
	if len(req.ClientAuthV3) > 0 && !slices.Contains(flags, FlagV3Auth) {
		flags = append(flags, FlagV3Auth)
	}
	for _, f := range flags {
		if !slices.Contains(knownFlags, f) {
			return "", fmt.Errorf("%w: unknown flag %q", ErrBadArgument, f)
		}
	}
	if len(flags) > 0 {
		s := make([]string, len(flags))
		for i, f := range flags {
			s[i] = string(f)
		}
		sb.WriteString(" Flags=" + strings.Join(s, ","))
	}
	if req.MaxStreams < 0 || req.MaxStreams > 65535 {
		return "", fmt.Errorf("%w: MaxStreams %d out of range 0..65535", ErrBadArgument, req.MaxStreams)
	}
	if req.MaxStreams > 0 {
		sb.WriteString(" MaxStreams=" + strconv.Itoa(req.MaxStreams))
	}
	if p := req.PoW; p != nil {
		if p.QueueRate < 0 || p.QueueBurst < 0 {
			return "", fmt.Errorf("%w: negative PoW parameter", ErrBadArgument)
		}
		sb.WriteString(" PoWDefensesEnabled=1")
		if p.QueueRate > 0 {
			sb.WriteString(" PoWQueueRate=" + strconv.Itoa(p.QueueRate))
		}
		if p.QueueBurst > 0 {
			sb.WriteString(" PoWQueueBurst=" + strconv.Itoa(p.QueueBurst))
		}
	}
	if len(req.Ports) == 0 {
		return "", fmt.Errorf("%w: at least one port mapping is required", ErrBadArgument)
	}
	for _, p := range req.Ports {
		if p.Virtual < 1 || p.Virtual > 65535 {
			return "", fmt.Errorf("%w: virtual port %d out of range", ErrBadArgument, p.Virtual)
		}
		sb.WriteString(" Port=" + strconv.Itoa(p.Virtual))
		if p.Target != "" {
			if err := checkTarget(p.Target); err != nil {
				return "", err
			}
			sb.WriteString("," + p.Target)
		}
	}
	for _, k := range req.ClientAuthV3 {
		if err := checkX25519Base32(k); err != nil {
			return "", err
		}
		sb.WriteString(" ClientAuthV3=" + k)
	}
	return sb.String(), nil
}

// checkTarget refuses anything that could end the Port= argument early.
func checkTarget(t string) error {
	if strings.ContainsAny(t, " ,\"\\\r\n\x00\t") {
		return fmt.Errorf("%w: port target %q contains a separator or control character", ErrBadArgument, truncate(t))
	}
	return nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// checkX25519Base32 accepts an unpadded base32 x25519 public key (52
// characters, 32 bytes), any case.
func checkX25519Base32(k string) error {
	b, err := b32.DecodeString(strings.ToUpper(k))
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%w: ClientAuthV3 key %q is not base32 of 32 bytes", ErrBadArgument, truncate(k))
	}
	return nil
}

// AddOnion creates an onion service (ADD_ONION). Unless FlagDetach is set
// the service lives as long as this connection.
func (c *Conn) AddOnion(ctx context.Context, req AddOnionRequest) (AddOnionResult, error) {
	line, err := buildAddOnion(req)
	if err != nil {
		return AddOnionResult{}, fmt.Errorf("torctl: add onion: %w", err)
	}
	r, err := c.Do(ctx, line)
	if err != nil {
		return AddOnionResult{}, fmt.Errorf("torctl: add onion: %w", err)
	}
	return parseAddOnion(r)
}

// parseAddOnion parses
//
//	250-ServiceID=<56 chars>
//	250-PrivateKey=ED25519-V3:<base64>
//	250 OK
func parseAddOnion(r *Reply) (AddOnionResult, error) {
	var res AddOnionResult
	for _, l := range r.Lines {
		k, v, ok, err := parseLineValue(l.Text)
		if err != nil || !ok {
			continue
		}
		switch k {
		case "ServiceID":
			res.ServiceID = v
		case "PrivateKey":
			res.PrivateKey = v
		}
	}
	if res.ServiceID == "" {
		return res, fmt.Errorf("torctl: add onion: %w: no ServiceID", ErrMalformed)
	}
	// Exactly 56 lowercase base32 characters, as tor sends it.
	if id, err := checkServiceID(res.ServiceID); err != nil || id != res.ServiceID {
		return AddOnionResult{}, fmt.Errorf("torctl: add onion: %w: ServiceID %q is not a v3 service id", ErrMalformed, truncate(res.ServiceID))
	}
	return res, nil
}

// checkServiceID accepts a v3 service ID (56 base32 characters, with or
// without ".onion").
func checkServiceID(id string) (string, error) {
	id = strings.TrimSuffix(strings.ToLower(id), ".onion")
	if len(id) != 56 {
		return "", fmt.Errorf("%w: service id %q is not 56 characters", ErrBadArgument, truncate(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return "", fmt.Errorf("%w: service id %q is not base32", ErrBadArgument, truncate(id))
		}
	}
	return id, nil
}

// DelOnion removes an onion service (DEL_ONION).
func (c *Conn) DelOnion(ctx context.Context, serviceID string) error {
	id, err := checkServiceID(serviceID)
	if err != nil {
		return fmt.Errorf("torctl: del onion: %w", err)
	}
	if _, err := c.Do(ctx, "DEL_ONION "+id); err != nil {
		return fmt.Errorf("torctl: del onion: %w", err)
	}
	return nil
}

// buildClientAuthAdd builds (control-spec §3.30):
//
//	"ONION_CLIENT_AUTH_ADD" SP HSAddress SP KeyType ":" PrivateKeyBlob
//	        [SP "ClientName=" Nickname] [SP "Flags=" TYPE] CRLF
//
// privKeyB64 is the base64 of the 32-byte x25519 private key.
func buildClientAuthAdd(addr, privKeyB64 string, flags []string) (string, error) {
	id, err := checkServiceID(addr)
	if err != nil {
		return "", err
	}
	key, err := base64.StdEncoding.DecodeString(privKeyB64)
	if err != nil || len(key) != 32 {
		return "", fmt.Errorf("%w: x25519 private key must be base64 of 32 bytes", ErrBadArgument)
	}
	line := "ONION_CLIENT_AUTH_ADD " + id + " x25519:" + privKeyB64
	for _, f := range flags {
		if err := checkKeyword(f); err != nil {
			return "", err
		}
	}
	if len(flags) > 0 {
		line += " Flags=" + strings.Join(flags, ",")
	}
	return line, nil
}

// OnionClientAuthAdd registers client authorization credentials for an
// onion service (ONION_CLIENT_AUTH_ADD). flags may contain "Permanent".
func (c *Conn) OnionClientAuthAdd(ctx context.Context, addr, privKeyB64 string, flags ...string) error {
	line, err := buildClientAuthAdd(addr, privKeyB64, flags)
	if err != nil {
		return fmt.Errorf("torctl: onion client auth add: %w", err)
	}
	if _, err := c.Do(ctx, line); err != nil {
		return fmt.Errorf("torctl: onion client auth add: %w", err)
	}
	return nil
}

// OnionClientAuthRemove removes client authorization credentials
// (ONION_CLIENT_AUTH_REMOVE).
func (c *Conn) OnionClientAuthRemove(ctx context.Context, addr string) error {
	id, err := checkServiceID(addr)
	if err != nil {
		return fmt.Errorf("torctl: onion client auth remove: %w", err)
	}
	if _, err := c.Do(ctx, "ONION_CLIENT_AUTH_REMOVE "+id); err != nil {
		return fmt.Errorf("torctl: onion client auth remove: %w", err)
	}
	return nil
}
