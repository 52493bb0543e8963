package invite

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
)

func addr() string {
	return onion.Hostname(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey))
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	inv, err := Create(dir, addr(), true, false, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	line := inv.String()
	got, err := Parse(" " + line + "\n")
	if err != nil || got != inv {
		t.Fatalf("Parse(String()) = %+v, %v; want %+v", got, err, inv)
	}
	// The secret is never stored, only its hash.
	files, _ := filepath.Glob(filepath.Join(dir, Dir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), inv.Secret) || strings.Contains(f, inv.Secret) {
			t.Errorf("%s holds the secret", f)
		}
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, fi.Mode())
		}
	}
	pd, err := Redeem(dir, inv.Secret, now.Add(time.Minute))
	if err != nil || !pd.Read || pd.Write {
		t.Fatalf("Redeem = %+v, %v", pd, err)
	}
	if _, err := Redeem(dir, inv.Secret, now.Add(time.Minute)); !errors.Is(err, ErrUsed) {
		t.Errorf("second use: %v, want ErrUsed", err)
	}
}

func TestRefusals(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	inv, err := Create(dir, addr(), true, true, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Redeem(dir, inv.Secret, now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	// Refusing an expired invite changes nothing: it is still expired, not used.
	if _, err := Redeem(dir, inv.Secret, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired twice: %v", err)
	}
	other, _ := Create(t.TempDir(), addr(), true, true, time.Hour, now)
	if _, err := Redeem(dir, other.Secret, now); !errors.Is(err, ErrUnknown) {
		t.Errorf("another agent's invite: %v", err)
	}
	for _, bad := range []string{
		"", "hello", Prefix, Prefix + "!!!", Prefix + "e30", // {}
		strings.TrimSuffix(inv.String(), inv.String()[len(inv.String())-5:]),
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrBad) {
			t.Errorf("Parse(%q) = %v, want ErrBad", bad, err)
		}
	}
}

// TestRace: of many joiners presenting one secret at once, exactly one wins.
func TestRace(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	inv, err := Create(dir, addr(), true, true, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Redeem(dir, inv.Secret, now); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrUsed) {
				t.Errorf("loser: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d joiners won", wins)
	}
}
