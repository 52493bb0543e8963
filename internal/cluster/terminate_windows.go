//go:build windows

package cluster

import "os"

// terminate ends p: Windows cannot send SIGTERM to another process, and the
// agent was already asked to shut down through its API.
func terminate(p *os.Process) { p.Kill() }
