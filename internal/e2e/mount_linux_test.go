package e2e

import "syscall"

// The fault tests put a repository on a small tmpfs to fill the disk:
// Linux only, as root or with CAP_SYS_ADMIN.

func mountTmpfs(dir, opts string) error { return syscall.Mount("tmpfs", dir, "tmpfs", 0, opts) }

func remountTmpfs(dir, opts string) error {
	return syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, opts)
}

func unmountTmpfs(dir string) error { return syscall.Unmount(dir, 0) }
