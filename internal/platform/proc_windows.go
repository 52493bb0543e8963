//go:build windows

package platform

import (
	"errors"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/windows"
)

// Detach makes cmd start without the console of the command that started
// it, in a process group of its own, so that ^C in that console does not
// reach it and it outlives the command.
func Detach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP | windows.DETACHED_PROCESS
}

// NewGroup makes cmd start in a process group of its own. On Windows a
// process group only scopes console ^C; KillGroup ends the process alone.
func NewGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_NEW_PROCESS_GROUP
}

// KillGroup ends pid. Unlike Unix it does not reach the processes pid
// started: an agent's tor exits by itself when its owning controller
// (__OwningControllerProcess) is gone.
func KillGroup(pid int) error { return Kill(pid) }

// stillActive is the exit code GetExitCodeProcess reports for a running
// process (STILL_ACTIVE).
const stillActive = 259

// Alive reports whether a process with this pid is running.
func Alive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		// Access denied means it exists but belongs to someone else.
		return errors.Is(err, windows.ERROR_ACCESS_DENIED)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	return code == stillActive
}

// Terminate ends pid. Windows has no SIGTERM for another process; this is
// TerminateProcess, like Kill.
func Terminate(pid int) error { return Kill(pid) }

// Kill ends pid at once (TerminateProcess).
func Kill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// Umask does nothing on Windows, where files get the ACL of their
// directory.
func Umask(int) {}
