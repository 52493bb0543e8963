// Command mmogit is the CLI and agent of mmogit: sovereign, signed memories
// for AI agents, synced peer to peer over Tor onion services.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/spf13/cobra"
)

// Exit codes, documented in --help (exitCodesHelp) and the README.
const (
	exitFailure      = 1 // any other error
	exitUsage        = 2 // bad flags or arguments (incl. the agent's bad_request / bad_address)
	exitNotRunning   = 3 // no agent runs for the config dir
	exitAgentFailure = 4 // the agent ran the request and it failed (peer unreachable, timeout, ...): see "kind"
)

const exitCodesHelp = `

Exit status: 0 success; 1 error; 2 bad flags or arguments; 3 no agent is
running for the config dir; 4 the agent ran the request and it failed (for
example every peer of a sync failed, or a peer is unreachable). With --json a
failure also prints {"error": "...", "kind": "..."} on stdout; kind is the
agent's error kind (see docs in internal/localapi: onion_unreachable,
timeout, peer_stalled, ...), or usage, not_running, error.`

func main() {
	root := newRootCmd()
	root.Long += exitCodesHelp
	markUsageErrors(root)
	if err := root.Execute(); err != nil {
		os.Exit(reportError(err, g.json, g.stdout, g.stderr))
	}
}

// exitError ends the process with a code after the command has already
// reported what went wrong.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a bad flag or argument.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// markUsageErrors makes flag and argument errors of every command
// usageErrors, so they get exitUsage.
func markUsageErrors(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	if orig := c.Args; orig != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				return &usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsageErrors(sub)
	}
}

// errorInfo is the exit code and machine-readable kind of an error.
func errorInfo(err error) (code int, kind string) {
	var ue *usageError
	var ae *localapi.APIError
	switch {
	case errors.As(err, &ue), strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage, "usage"
	case localapi.IsNotRunning(err):
		return exitNotRunning, "not_running"
	case errors.As(err, &ae):
		kind = ae.Kind
		if kind == "" {
			kind = "error"
		}
		if kind == "bad_request" || kind == "bad_address" {
			return exitUsage, kind
		}
		return exitAgentFailure, kind
	}
	return exitFailure, "error"
}

// reportError prints err (on stderr, and with --json as an object on
// stdout) and returns the exit code. An exitError was reported already.
func reportError(err error, asJSON bool, stdout, stderr io.Writer) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	code, kind := errorInfo(err)
	fmt.Fprintln(stderr, "mmogit:", err)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]string{"error": err.Error(), "kind": kind})
	}
	return code
}
