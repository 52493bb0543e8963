//go:build !linux

package e2e

import "errors"

var errNoTmpfs = errors.New("tmpfs mounts are Linux only")

func mountTmpfs(dir, opts string) error   { return errNoTmpfs }
func remountTmpfs(dir, opts string) error { return errNoTmpfs }
func unmountTmpfs(dir string) error       { return errNoTmpfs }
