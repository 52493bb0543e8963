//go:build unix

package platform

import (
	"errors"
	"os/exec"
	"syscall"
)

// Detach makes cmd start in a session of its own, so that a terminal's ^C
// or hang-up does not reach it and it outlives the command that started it.
func Detach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
}

// NewGroup makes cmd start in a process group of its own, which KillGroup
// kills with everything it started.
func NewGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// KillGroup kills the process group led by pid (see NewGroup).
func KillGroup(pid int) error { return syscall.Kill(-pid, syscall.SIGKILL) }

// Alive reports whether a process with this pid exists (a zombie counts).
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Terminate asks pid to exit (SIGTERM).
func Terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }

// Kill ends pid at once (SIGKILL).
func Kill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// Umask sets the process's file mode creation mask.
func Umask(mask int) { syscall.Umask(mask) }
