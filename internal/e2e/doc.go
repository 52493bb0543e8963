// Package e2e holds the end-to-end tests: the real mmogit binary, run as
// agent processes with their own tor, on a private Tor network of real tor
// processes on 127.0.0.1. The package has no code of its own; see the
// _test files. Helpers shared by the tests are in harness_test.go.
package e2e
