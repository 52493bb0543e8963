//go:build unix

package cluster

import (
	"os"
	"syscall"
)

// terminate asks p to exit (SIGTERM).
func terminate(p *os.Process) { p.Signal(syscall.SIGTERM) }
