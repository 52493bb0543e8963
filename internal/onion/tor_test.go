package onion

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRealTorDerivesSameAddress lets the real tor binary compute the address
// of keys we write into a HiddenServiceDir, and compares with Encode. Tor
// writes the hostname file while loading the service, without network.
func TestRealTorDerivesSameAddress(t *testing.T) {
	torBin, err := exec.LookPath("tor")
	if err != nil {
		t.Fatalf("tor binary not found (apt-get install -y tor): %v", err)
	}
	seeds := [][]byte{mustHex(t, vectors[1].seed), mustHex(t, vectors[2].seed)}
	for range 3 {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, priv.Seed())
	}
	dir := t.TempDir()
	var torrc strings.Builder
	fmt.Fprintf(&torrc, "DataDirectory %s\nDisableNetwork 1\nSocksPort 0\nLog notice stderr\n", filepath.Join(dir, "data"))
	want := map[string]string{}
	for i, s := range seeds {
		priv := ed25519.NewKeyFromSeed(s)
		hs := filepath.Join(dir, fmt.Sprintf("hs%d", i))
		if err := WriteHiddenServiceDir(hs, priv); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&torrc, "HiddenServiceDir %s\nHiddenServicePort 80 127.0.0.1:9\n", hs)
		want[hs] = Encode(priv.Public().(ed25519.PublicKey))
	}
	rc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(rc, []byte(torrc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, torBin, "-f", rc)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	for hs, addr := range want {
		p := filepath.Join(hs, "hostname")
		var got []byte
		for ctx.Err() == nil {
			if got, err = os.ReadFile(p); err == nil && len(got) > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ctx.Err() != nil {
			t.Fatalf("tor never wrote %s; tor output:\n%s", p, out)
		}
		if g := strings.TrimSpace(string(got)); g != addr+".onion" {
			t.Errorf("tor derived %s, Encode gave %s.onion", g, addr)
		}
	}
}
