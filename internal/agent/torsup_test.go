package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestUselessWarning(t *testing.T) {
	for _, tc := range []struct {
		warning, reason string
		useless         bool
	}{
		{"", "", true},
		{"DONE (DONE)", "", true},
		{"DONE", "DONE", true},
		{"Connection refused (CONNECTREFUSED)", "", false},
		{"No route to host", "NOROUTE", false},
	} {
		if got := uselessWarning(tc.warning, tc.reason); got != tc.useless {
			t.Errorf("uselessWarning(%q, %q) = %v", tc.warning, tc.reason, got)
		}
	}
}

func TestLastTorWarning(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tor.log")
	log := `Dec 01 10:00:00.000 [notice] Bootstrapped 5% (conn): Connecting to a relay
Dec 01 10:00:01.000 [warn] Problem bootstrapping. Stuck at 5% (conn): Connecting to a relay. (Connection refused; CONNECTREFUSED; count 3; recommendation warn; host AB at 127.0.0.1:1)
Dec 01 10:00:02.000 [notice] Closing no-longer-configured Socks listener
Dec 01 10:00:03.000 [warn] You are running Tor as root. You don't need to, and you probably shouldn't.
`
	if err := os.WriteFile(p, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	want := "Dec 01 10:00:01.000 [warn] Problem bootstrapping. Stuck at 5% (conn): Connecting to a relay. (Connection refused; CONNECTREFUSED; count 3; recommendation warn; host AB at 127.0.0.1:1)"
	if got := lastTorWarning(p); got != want {
		t.Errorf("lastTorWarning = %q", got)
	}
	if got := lastTorWarning(filepath.Join(t.TempDir(), "none")); got != "" {
		t.Errorf("no log gives %q", got)
	}
}
