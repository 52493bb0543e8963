package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadCreatesDefaults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Transport != Tor {
		t.Errorf("default transport %q, want tor", c.Transport)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tor.json: %v %v", fi, err)
	}
	c.Transport = Hybrid
	c.HybridTimeout = Duration(5 * time.Second)
	if err := Save(dir, c); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(dir)
	if err != nil || c2.Transport != Hybrid || c2.HybridTimeout.D() != 5*time.Second {
		t.Fatalf("round trip: %+v %v", c2, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"bad json", "{", "tor.json"},
		{"bad transport", `{"transport":"carrier-pigeon"}`, "carrier-pigeon"},
		{"bad duration", `{"hybrid_timeout":"soon"}`, "soon"},
		{"newline in bridge", `{"tor":{"onion_port":1,"bridges":["obfs4 1.2.3.4:5\nControlPort 1"]}}`, "newline"},
		{"bad port", `{"tor":{"onion_port":70000}}`, "onion_port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, FileName), []byte(tt.body), 0o600)
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestDurationSeconds(t *testing.T) {
	var d Duration
	if err := d.UnmarshalJSON([]byte("2.5")); err != nil || d.D() != 2500*time.Millisecond {
		t.Fatalf("%v %v", d, err)
	}
}
