//go:build unix

package platform

import "io/fs"

// OthersAccess returns the permission bits of fi that let group or others
// in (mode & 0o077), which mmogit refuses on files holding keys.
func OthersAccess(fi fs.FileInfo) fs.FileMode { return fi.Mode().Perm() & 0o077 }
