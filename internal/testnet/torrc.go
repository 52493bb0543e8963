package testnet

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// role says what a tor process does in the network; it decides its torrc.
type role int

const (
	roleAuthority role = iota // directory authority that is also an exit relay
	roleRelay                 // plain exit relay
	roleBridge                // obfs4 bridge, not in the consensus
	roleClient                // the network's own client
)

func (r role) String() string {
	switch r {
	case roleAuthority:
		return "authority"
	case roleRelay:
		return "relay"
	case roleBridge:
		return "bridge"
	case roleClient:
		return "client"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// Voting schedule of the authorities. 10/2/2 is the fastest schedule tor
// accepts once a consensus exists; before the first one the "initial"
// values apply, and those may be lower.
const (
	initialVotingInterval = 6 // TestingV3AuthInitialVotingInterval, seconds
	firstConsensusLead    = 6 // first valid-after at floor(launch)+6 s, i.e. 5–6 s after launch
	clientHeadStart       = 200 * time.Millisecond
)

// votingStartOffset returns the TestingV3AuthVotingStartOffset that makes
// the authorities' first valid-after time fall at floor(launch)+6 s, and
// that valid-after time.
//
// Tor (voting_sched_get_start_of_interval_after) schedules the first
// consensus at the smallest t > now with (t - midnight) ≡ offset (mod
// interval). Midnight UTC is a multiple of 6 s in Unix time, so with the
// 6 s initial interval offset = (floor(launch)+6) mod 6 gives exactly
// floor(launch)+6. Without an offset the first consensus can come after
// only a second or two, before the relays have uploaded descriptors, and
// about 40 % of launches then sat out a whole voting round.
func votingStartOffset(launch time.Time) (offset int, validAfter time.Time) {
	sec := launch.Unix() + firstConsensusLead
	offset = int(sec % initialVotingInterval)
	return offset, time.Unix(sec, 0)
}

// authority is what the other nodes need to know about one authority.
type authority struct {
	nick        string
	orPort      int // as advertised: the shaper's port on a shaped network
	dirPort     int
	v3ident     string // fingerprint of the authority certificate
	fingerprint string // RSA relay identity fingerprint
}

// dirAuthorityLine is the torrc DirAuthority line that points at a.
func dirAuthorityLine(a authority) string {
	return fmt.Sprintf("DirAuthority %s orport=%d v3ident=%s 127.0.0.1:%d %s",
		a.nick, a.orPort, a.v3ident, a.dirPort, a.fingerprint)
}

// clientTorrc is the set of lines any tor needs to join the network as a
// client; see Network.ClientTorrc.
func clientTorrc(auths []authority, geoIP, geoIPv6 string) []string {
	lines := []string{"TestingTorNetwork 1"}
	for _, a := range auths {
		lines = append(lines, dirAuthorityLine(a))
	}
	return append(lines,
		// Without this, every circuit of a fresh client goes back through
		// its (single, sampled) guard, and a guard that was not yet
		// reachable stalled bootstrap for 8–120 s.
		"UseEntryGuards 0",
		"FetchDirInfoEarly 1",
		"FetchDirInfoExtraEarly 1",
		"PathsNeededToBuildCircuits 0.67",
		// Empty GeoIP files: parsing the real ones costs ~0.3 s CPU per
		// process and a loopback network has no countries.
		"GeoIPFile "+geoIP,
		"GeoIPv6File "+geoIPv6,
	)
}

// bridgeClientTorrc is clientTorrc for a client that enters the network
// through the obfs4 bridge. Tor refuses bridges without entry guards, so
// UseEntryGuards stays on.
func bridgeClientTorrc(client []string, transportPath, bridgeLine string) []string {
	var lines []string
	for _, l := range client {
		if l == "UseEntryGuards 0" {
			continue
		}
		lines = append(lines, l)
	}
	return append(lines,
		"UseBridges 1",
		"ClientTransportPlugin obfs4 exec "+transportPath,
		"Bridge "+bridgeLine,
	)
}

// nodeConfig is everything that goes into one node's torrc.
type nodeConfig struct {
	role        role
	nick        string
	dataDir     string
	auths       []authority
	geoIP       string
	geoIPv6     string
	orPort      int    // relays, authorities, bridge: where tor listens
	shapedPort  int    // when shaped: the shaper's port, which tor advertises
	dirPort     int    // authorities
	ptPort      int    // bridge: obfs4 listen port
	ptPath      string // bridge: obfs4proxy binary
	votingStart int    // authorities: TestingV3AuthVotingStartOffset
	ownerPID    int    // 0 when detached
	extra       []string
}

// torrc renders c as torrc lines.
func (c nodeConfig) torrc() []string {
	return append(c.baseTorrc(), c.extra...)
}

func (c nodeConfig) baseTorrc() []string {
	lines := []string{"TestingTorNetwork 1"}
	for _, a := range c.auths {
		lines = append(lines, dirAuthorityLine(a))
	}
	lines = append(lines,
		"Nickname "+c.nick,
		"DataDirectory "+c.dataDir,
		"RunAsDaemon 0",
		"Log notice stdout",
		"SafeLogging 0",
		"ControlPort auto",
		"ControlPortWriteToFile "+c.dataDir+"/control-port",
		"CookieAuthentication 1",
		"CookieAuthFile "+c.dataDir+"/control_auth_cookie",
		"GeoIPFile "+c.geoIP,
		"GeoIPv6File "+c.geoIPv6,
		"ShutdownWaitLength 0",
		"PathsNeededToBuildCircuits 0.67",
	)
	if c.ownerPID != 0 {
		lines = append(lines, "__OwningControllerProcess "+strconv.Itoa(c.ownerPID))
	}
	if c.role == roleClient {
		return append(lines,
			"SocksPort auto ExtendedErrors",
			"UseEntryGuards 0",
			"FetchDirInfoEarly 1",
			"FetchDirInfoExtraEarly 1",
		)
	}
	if c.shapedPort != 0 {
		// tor listens on orPort but advertises the shaper in front of it,
		// so every other node reaches this one through the shaper.
		lines = append(lines,
			fmt.Sprintf("ORPort 127.0.0.1:%d NoAdvertise", c.orPort),
			fmt.Sprintf("ORPort 127.0.0.1:%d NoListen", c.shapedPort))
	} else {
		lines = append(lines, fmt.Sprintf("ORPort 127.0.0.1:%d", c.orPort))
	}
	lines = append(lines,
		"Address 127.0.0.1",
		"SocksPort 0",
		"AssumeReachable 1",
		"ServerDNSDetectHijacking 0",
		"ServerDNSTestAddresses",
		"ServerDNSResolvConfFile /dev/null",
	)
	if c.role == roleBridge {
		return append(lines,
			"BridgeRelay 1",
			"PublishServerDescriptor 0",
			"ExitRelay 0",
			"ServerTransportPlugin obfs4 exec "+c.ptPath,
			fmt.Sprintf("ServerTransportListenAddr obfs4 127.0.0.1:%d", c.ptPort),
			"ExtORPort auto",
		)
	}
	lines = append(lines,
		"ExitRelay 1",
		"ExitPolicyRejectPrivate 0",
		// accept private:* as well as the explicit loopback rule works
		// around tor bug #11264 on test networks.
		"ExitPolicy accept 127.0.0.0/8:*",
		"ExitPolicy accept private:*",
		"ExitPolicy accept *:*",
	)
	if c.role != roleAuthority {
		return lines
	}
	return append(lines,
		fmt.Sprintf("DirPort 127.0.0.1:%d", c.dirPort),
		"AuthoritativeDirectory 1",
		"V3AuthoritativeDirectory 1",
		"ContactInfo "+c.nick+"@testnet.invalid",
		"TestingV3AuthInitialVotingInterval "+strconv.Itoa(initialVotingInterval),
		"TestingV3AuthInitialVoteDelay 2",
		"TestingV3AuthInitialDistDelay 2",
		"V3AuthVotingInterval 10",
		"V3AuthVoteDelay 2",
		"V3AuthDistDelay 2",
		"V3AuthNIntervalsValid 2",
		"TestingV3AuthVotingStartOffset "+strconv.Itoa(c.votingStart),
		"TestingDirAuthVoteGuard *",
		"TestingDirAuthVoteHSDir *",
		"TestingDirAuthVoteExit *",
		"TestingMinExitFlagThreshold 0",
		// Without these no relay gets the Stable flag in a network that is
		// seconds old; intro points then fail and a descriptor may not
		// upload within 300 s.
		"AuthDirVoteStableGuaranteeMinUptime 0",
		"AuthDirVoteStableGuaranteeMTBF 0",
	)
}

// parseBridgeLine turns the obfs4_bridgeline.txt that obfs4proxy writes
// into a client "Bridge" value. The file holds comments and one template
// line such as
//
//	Bridge obfs4 <IP ADDRESS>:<PORT> <FINGERPRINT> cert=AbC… iat-mode=0
func parseBridgeLine(file string, port int, fingerprint string) (string, error) {
	for _, l := range strings.Split(file, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "Bridge" || f[1] != "obfs4" {
			continue
		}
		var cert, iat string
		for _, kv := range f[2:] {
			switch {
			case strings.HasPrefix(kv, "cert="):
				cert = kv
			case strings.HasPrefix(kv, "iat-mode="):
				iat = kv
			}
		}
		if cert == "" || iat == "" {
			break
		}
		return fmt.Sprintf("obfs4 127.0.0.1:%d %s %s %s", port, fingerprint, cert, iat), nil
	}
	return "", fmt.Errorf("testnet: no obfs4 bridge line in %q", file)
}

// advertisedORPort is the ORPort the node publishes: the shaper's when it
// has one.
func (c nodeConfig) advertisedORPort() int {
	if c.shapedPort != 0 {
		return c.shapedPort
	}
	return c.orPort
}
