package main

import (
	"strings"
	"testing"
)

func TestMCPCommand(t *testing.T) {
	if long := newMCPCmd().Long; !strings.Contains(long, `"mcpServers"`) || !strings.Contains(long, "mmogit tor start") {
		t.Errorf("mcp help lacks the client configuration or the agent hint:\n%s", long)
	}
	if _, _, err := runCLI(t, t.TempDir(), nil, "mcp", "extra"); err == nil {
		t.Error("mcp takes no arguments")
	}
}
