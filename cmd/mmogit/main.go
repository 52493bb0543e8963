// Command mmogit is the CLI and agent of mmogit: sovereign, signed memories
// for AI agents, synced peer to peer over Tor onion services.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "mmogit:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a code after the command has already
// reported what went wrong.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
