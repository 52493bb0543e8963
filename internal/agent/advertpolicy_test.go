package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
)

// testClientPub is an x25519 public key in tor's base32 form.
const testClientPub = "UTQJFEVWKHBHROLXFRLJ6X5JXMJ5SBVUNK3IZHPZ3QVUICPYUIEQ"

// TestAdvertRestricted: an agent whose onion service is restricted
// (authorized_clients) advertises nothing, neither its configured services
// at start-up nor what `tor advertise` asks for, unless
// tor.advertise_restricted is set; an unrestricted agent is unaffected.
func TestAdvertRestricted(t *testing.T) {
	for _, tc := range []struct {
		name       string
		clients    []string
		allow      bool
		advertises bool
	}{
		{"unrestricted", nil, false, true},
		{"restricted", []string{testClientPub}, false, false},
		{"restricted, advertise_restricted", []string{testClientPub}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Services = []string{"memory_sync"}
			cfg.Tor.AuthorizedClients = tc.clients
			cfg.Tor.AdvertiseRestricted = tc.allow
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			a := &Agent{opts: Options{Config: cfg}, ready: make(chan struct{})}

			got := a.startupServices(false)
			if want := []string{"memory_sync"}; tc.advertises != slices.Equal(got, want) || !tc.advertises && len(got) != 0 {
				t.Errorf("start-up services %v; advertises %v", got, tc.advertises)
			}
			// Not started: an allowed advertise gets "starting", a
			// refused one the policy error, before anything else.
			_, err := a.Advertise(context.Background(), localapi.AdvertiseRequest{Services: []string{"chat"}})
			var ke *kindError
			if !errors.As(err, &ke) {
				t.Fatalf("Advertise: %v, want a kind error", err)
			}
			if tc.advertises {
				if ke.Kind() != "starting" {
					t.Errorf("Advertise: %v, want kind starting", err)
				}
			} else if ke.Kind() != "policy" || !strings.Contains(err.Error(), "advertise_restricted") {
				t.Errorf("Advertise: %v, want kind policy naming tor.advertise_restricted", err)
			}
		})
	}
}
