package main

import (
	"errors"
	"strings"
	"testing"
)

// TestUIRefusesNonLoopback: `mmogit ui` serves on loopback only; any
// other --listen is a usage error naming the address, before anything
// listens.
func TestUIRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:8080", "example.com:80"} {
		t.Run(addr, func(t *testing.T) {
			_, _, err := runCLI(t, t.TempDir(), nil, "ui", "--no-open", "--listen", addr)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), addr) {
				t.Errorf("ui --listen %s: %v: want a usage error naming the address and loopback", addr, err)
			}
		})
	}
}
