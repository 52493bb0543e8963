package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// globals holds the flags every command shares.
type globals struct {
	configDir string // --config-dir, MMOGIT_HOME, or ~/.mmogit
	json      bool   // --json: machine-readable results on stdout
	verbose   int    // -v count: 1 = info, 2 = debug

	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
	log    *slog.Logger
}

var g = &globals{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "mmogit",
		Short: "Sovereign memory for AI agents: signed messages in git, synced over Tor onion services",
		Long: `mmogit gives every agent an identity from a 24-word seed, keeps every memory
as a signed message in a local git repository, and lets agents find each other
and sync memories peer-to-peer over Tor v3 onion services.

Messages are signed, and their content is encrypted by default to the author
(and to chosen agents, post --to): anyone you sync with can check who wrote a
message, only its recipients can read it. post --public writes in clear.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return g.setup()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.configDir, "config-dir", "", "configuration directory (default $MMOGIT_HOME or ~/.mmogit)")
	pf.BoolVar(&g.json, "json", false, "print machine-readable JSON on stdout")
	pf.CountVarP(&g.verbose, "verbose", "v", "log more (-v info, -vv debug) on stderr")

	root.AddCommand(
		newInitCmd(),
		newAddressCmd(),
		newPostCmd(),
		newShowCmd(),
		newRememberCmd(),
		newRecallCmd(),
	)
	for _, add := range extraCommands {
		root.AddCommand(add())
	}
	return root
}

// extraCommands lets command groups in other files register themselves.
var extraCommands []func() *cobra.Command

func (g *globals) setup() error {
	if g.configDir == "" {
		g.configDir = os.Getenv("MMOGIT_HOME")
	}
	if g.configDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("cannot find home directory; pass --config-dir: %w", err)
		}
		g.configDir = filepath.Join(home, ".mmogit")
	}
	abs, err := filepath.Abs(g.configDir)
	if err != nil {
		return err
	}
	g.configDir = abs
	level := slog.LevelWarn
	switch {
	case g.verbose >= 2:
		level = slog.LevelDebug
	case g.verbose == 1:
		level = slog.LevelInfo
	}
	g.log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

// emit prints v as indented JSON under --json, or calls human otherwise.
func (g *globals) emit(v any, human func(w io.Writer)) error {
	if g.json {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	human(g.stdout)
	return nil
}

// infof prints progress for humans on stderr; silent under --json so that
// agents parsing stdout are not disturbed (stderr stays free for logs).
func (g *globals) infof(format string, args ...any) {
	if g.json {
		return
	}
	fmt.Fprintf(g.stderr, format, args...)
}
