//go:build !linux

package cluster

import (
	"os/exec"

	"github.com/mmogit/mmogit/internal/platform"
)

// ownProcessGroup puts an agent in a process group of its own, which Kill
// ends (on Unix with the tor it started). Only Linux can also have the
// agent killed when the process that started it dies (Pdeathsig): here an
// agent whose starter crashed keeps running until `mmogit tor stop` or a
// kill; its tor still exits with it (__OwningControllerProcess).
func ownProcessGroup(cmd *exec.Cmd) { platform.NewGroup(cmd) }
