// Package invite lets two agents trust each other without copying keys
// around by hand.
//
// The inviter runs `mmogit invite`, which makes a one-time secret (32 random
// bytes from crypto/rand), keeps only its SHA-256 with the roles it will
// grant and an expiry in <config>/invites/<sha256 hex>.json (0600), and
// prints one line:
//
//	mmogit-invite1:<base64url of {"onion":…, "secret":…, "read":…, "write":…, "expires":…}>
//
// The joiner's agent dials the onion address, opens an invite stream and
// presents the secret. The stream runs inside libp2p's Noise session with
// the inviter's onion key, so the joiner knows it speaks to the inviter,
// and the inviter learns the joiner's key from the same handshake. The
// inviter claims the pending file with one rename (so a secret works once,
// even when two joiners race), records the joiner with the roles the
// invite names, and answers; the joiner then records the inviter (read and
// write unless told otherwise).
//
// The secret travels only inside the invite line and the Tor circuit. Who
// holds the line can join once before it expires; treat it like a password.
package invite

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
)

// Prefix starts every invite line.
const Prefix = "mmogit-invite1:"

// Protocol is the libp2p protocol ID of the invite exchange.
const Protocol = "/mmogit/invite/1.0.0"

// Dir is the directory of pending invites in the config dir.
const Dir = "invites"

// Errors of Redeem, for the joiner's error kind.
var (
	ErrUnknown = errors.New("invite: unknown invite (never made here, or a mistyped line)")
	ErrUsed    = errors.New("invite: this invite was already used")
	ErrExpired = errors.New("invite: this invite has expired")
	ErrBad     = errors.New("invite: malformed invite")
)

// Invite is what the line carries.
type Invite struct {
	Onion   string    `json:"onion"`  // the inviter's onion address
	Secret  string    `json:"secret"` // base64url, 32 bytes
	Read    bool      `json:"read"`   // the joiner may read the inviter's memories
	Write   bool      `json:"write"`  // the joiner may write into the inviter's store
	Expires time.Time `json:"expires"`
}

// String is the invite line.
func (i Invite) String() string {
	b, _ := json.Marshal(i)
	return Prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Parse reads an invite line. It checks the form, not the expiry (the
// inviter decides that, by its own clock).
func Parse(s string) (Invite, error) {
	s = strings.TrimSpace(s)
	body, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Invite{}, fmt.Errorf("%w: it must start with %q", ErrBad, Prefix)
	}
	if len(body) > 4096 {
		return Invite{}, fmt.Errorf("%w: %d characters is too long for an invite", ErrBad, len(body))
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %v (was the line cut when copied?)", ErrBad, err)
	}
	var i Invite
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&i); err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrBad, err)
	}
	if _, err := onion.Parse(i.Onion); err != nil {
		return Invite{}, fmt.Errorf("%w: inviter address: %v", ErrBad, err)
	}
	if sec, err := base64.RawURLEncoding.DecodeString(i.Secret); err != nil || len(sec) != 32 {
		return Invite{}, fmt.Errorf("%w: the secret must be 32 bytes", ErrBad)
	}
	return i, nil
}

// Pending is an invite as the inviter keeps it: the roles, never the secret.
type Pending struct {
	Read    bool      `json:"read"`
	Write   bool      `json:"write"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

func secretHash(secret string) string {
	h := sha256.Sum256([]byte("mmogit-invite-v1\x00" + secret))
	return hex.EncodeToString(h[:])
}

// Create makes an invite from the agent at onionAddr, valid for ttl, and
// records it in configDir.
func Create(configDir, onionAddr string, read, write bool, ttl time.Duration, now time.Time) (Invite, error) {
	if ttl <= 0 {
		return Invite{}, fmt.Errorf("invite: expiry %v must be positive", ttl)
	}
	sec := make([]byte, 32)
	if _, err := rand.Read(sec); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	inv := Invite{
		Onion: onion.Normalize(onionAddr), Secret: base64.RawURLEncoding.EncodeToString(sec),
		Read: read, Write: write, Expires: now.Add(ttl).UTC().Truncate(time.Second),
	}
	dir := filepath.Join(configDir, Dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	b, _ := json.MarshalIndent(Pending{Read: read, Write: write, Created: now.UTC().Truncate(time.Second), Expires: inv.Expires}, "", "  ")
	p := filepath.Join(dir, secretHash(inv.Secret)+".json")
	if err := os.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return Invite{}, fmt.Errorf("invite: %w", err)
	}
	return inv, nil
}

// Redeem checks secret against the pending invites in configDir and
// consumes the one it opens. An expired invite is refused and left as it
// is (nothing changes); a used one is refused.
func Redeem(configDir, secret string, now time.Time) (Pending, error) {
	if sec, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(sec) != 32 {
		return Pending{}, fmt.Errorf("%w: the secret must be 32 bytes", ErrBad)
	}
	p := filepath.Join(configDir, Dir, secretHash(secret)+".json")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(p + ".used"); err == nil {
			return Pending{}, ErrUsed
		}
		return Pending{}, ErrUnknown
	}
	if err != nil {
		return Pending{}, fmt.Errorf("invite: %w", err)
	}
	var pd Pending
	if err := json.Unmarshal(b, &pd); err != nil {
		return Pending{}, fmt.Errorf("invite: %s: %w", p, err)
	}
	if !now.Before(pd.Expires) {
		return Pending{}, fmt.Errorf("%w (at %s)", ErrExpired, pd.Expires.Format(time.RFC3339))
	}
	// One rename claims it: of two joiners racing, one finds the file gone.
	if err := os.Rename(p, p+".used"); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Pending{}, ErrUsed
		}
		return Pending{}, fmt.Errorf("invite: %w", err)
	}
	return pd, nil
}

// Request is what the joiner sends on an invite stream.
type Request struct {
	Secret string `json:"secret"`
}

// Reply is the inviter's answer. Kind is "invite_used", "invite_expired",
// "invite_unknown" or "bad_invite" when Error is set.
type Reply struct {
	OK    bool   `json:"ok"`
	Read  bool   `json:"read"`
	Write bool   `json:"write"`
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// Kind maps a Redeem error to its reply kind.
func Kind(err error) string {
	switch {
	case errors.Is(err, ErrUsed):
		return "invite_used"
	case errors.Is(err, ErrExpired):
		return "invite_expired"
	case errors.Is(err, ErrUnknown):
		return "invite_unknown"
	case errors.Is(err, ErrBad):
		return "bad_invite"
	}
	return "internal"
}

// FromKind maps a reply kind back to the error the joiner wraps.
func FromKind(kind string) error {
	switch kind {
	case "invite_used":
		return ErrUsed
	case "invite_expired":
		return ErrExpired
	case "invite_unknown":
		return ErrUnknown
	case "bad_invite":
		return ErrBad
	}
	return nil
}
