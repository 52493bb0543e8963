package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
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
