package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/torctl"
)

// TestRestrictedOnionService: an agent whose tor.json lists an authorized
// client publishes a restricted onion service. A peer without the key is
// refused by tor with onion_auth (0xF4, final: not retried), a peer with
// the key in its client_auth reaches it, all on the private network with
// the key pair made by `mmogit tor auth-key`.
func TestRestrictedOnionService(t *testing.T) {
	if testing.Short() {
		t.Skip("three agents on the private Tor network")
	}
	out, stderr, err := mm(t, t.TempDir(), "", "--json", "tor", "auth-key")
	if err != nil {
		t.Fatalf("tor auth-key: %v %s", err, stderr)
	}
	var key struct {
		PublicKey  string `json:"public_key"`
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil || len(key.PublicKey) != 52 || len(key.PrivateKey) != 44 {
		t.Fatalf("auth-key output %q: %v", out, err)
	}

	locked := startAgents(t, agentSpec{name: "locked", configure: func(c *config.Config) {
		c.Tor.AuthorizedClients = []string{key.PublicKey}
	}})[0]
	addr := locked.ID.OnionAddress()
	peers := startAgents(t,
		agentSpec{name: "keyholder", configure: func(c *config.Config) {
			c.Tor.ClientAuth = map[string]string{addr: key.PrivateKey}
		}},
		agentSpec{name: "stranger"})
	keyholder, stranger := peers[0], peers[1]

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err = connectFinal(ctx, t, stranger, addr)
	var ae *localapi.APIError
	if !errors.As(err, &ae) || ae.Kind != "onion_auth" {
		t.Fatalf("stranger's connect = %v, want kind onion_auth", err)
	}
	if err := connectFinal(ctx, t, keyholder, addr); err != nil {
		t.Fatalf("keyholder's connect: %v", err)
	}

	// NEWNYM (tor rotate) purges the keys given over the control port; the
	// agent gives them again, so its tor still holds the key afterwards.
	if _, err := keyholder.Client.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := clientAuthView(ctx, t, keyholder, addr); !strings.Contains(got, "x25519:") {
		t.Errorf("keyholder's tor after rotate: ONION_CLIENT_AUTH_VIEW = %q, want the key", got)
	}

	// What a user of the CLI sees: a JSON error with the kind, exit code 4.
	out, _, err = mm(t, stranger.Dir, "", "--json", "tor", "connect", addr)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(out, `"kind": "onion_auth"`) {
		t.Errorf("tor connect without the key: %v, stdout %s", err, out)
	}
}

// connectFinal asks agent a to connect to addr until the answer is a
// success or an error that is not transient (a descriptor not fetched
// yet, a circuit that failed).
func connectFinal(ctx context.Context, t *testing.T, a *cluster.Agent, addr string) error {
	for attempt := 1; ; attempt++ {
		_, err := a.Client.Connect(ctx, addr)
		var ae *localapi.APIError
		if err == nil || errors.As(err, &ae) && ae.Kind == "onion_auth" || ctx.Err() != nil {
			return err
		}
		t.Logf("%s: connect %s: attempt %d: %v", a.Name, addr, attempt, err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// clientAuthView asks the agent's own tor which client authorization
// credentials it holds for addr (ONION_CLIENT_AUTH_VIEW).
func clientAuthView(ctx context.Context, t *testing.T, a *cluster.Agent, addr string) string {
	t.Helper()
	dir := filepath.Join(a.Dir, "tor-data")
	c, err := torctl.Dial(ctx, "unix", filepath.Join(dir, "control.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(ctx, torctl.AuthOptions{CookiePath: filepath.Join(dir, "control_auth_cookie"), RequireSafeCookie: true}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Do(ctx, "ONION_CLIENT_AUTH_VIEW "+strings.TrimSuffix(addr, ".onion"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range r.Lines {
		lines = append(lines, l.Text)
	}
	return strings.Join(lines, "\n")
}
