//go:build windows

package platform

import "io/fs"

// OthersAccess returns the permission bits of fi that let group or others
// in. Windows has no such bits: Go reports 0666 or 0444 for every file and
// 0777 for every directory, and access is decided by ACLs, which mmogit
// does not inspect (a user profile's own directory is private by default).
// It returns 0.
func OthersAccess(fs.FileInfo) fs.FileMode { return 0 }
