package invite

import (
	"time"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
)

// RestrictedNote is said with an invite from an agent whose onion service
// is restricted: the line alone does not get the joiner through tor.
const RestrictedNote = "this agent's onion service is restricted (tor.authorized_clients); the joiner also needs a client key you authorize (`mmogit tor auth-key`)"

// Issue creates an invite to the agent whose config dir is configDir (its
// own onion address, from the identity there), granting both roles when
// neither is asked for. note is [RestrictedNote] when the agent's onion
// service is restricted, else empty. The CLI, the MCP server and the status
// page all issue invites through here.
func Issue(configDir string, read, write bool, ttl time.Duration, now time.Time) (inv Invite, note string, err error) {
	id, err := identity.Load(configDir)
	if err != nil {
		return Invite{}, "", err
	}
	if !read && !write {
		read, write = true, true
	}
	inv, err = Create(configDir, id.OnionAddress(), read, write, ttl, now)
	if err != nil {
		return Invite{}, "", err
	}
	if c, err := config.Load(configDir); err == nil && len(c.Tor.AuthorizedClients) > 0 {
		note = RestrictedNote
	}
	return inv, note, nil
}
