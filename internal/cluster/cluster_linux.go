package cluster

import (
	"os/exec"
	"syscall"

	"github.com/mmogit/mmogit/internal/platform"
)

// ownProcessGroup puts an agent in a process group of its own, which Kill
// ends with the tor it started, and has the kernel kill the agent if the
// process that started it (a test, the demo) dies first.
func ownProcessGroup(cmd *exec.Cmd) {
	platform.NewGroup(cmd)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
