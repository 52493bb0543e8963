package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { extraCommands = append(extraCommands, newKeyCmd) }

func newKeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Export this identity's keys for other tools",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newKeyExportCmd())
	return cmd
}

// keyExportResult is what `key export --age --json` prints.
type keyExportResult struct {
	AgeIdentity string `json:"age_identity"`
}

func newKeyExportCmd() *cobra.Command {
	var ageFmt, yes bool
	cmd := &cobra.Command{
		Use:   "export --age",
		Short: "Print the age identity (AGE-SECRET-KEY-1…) that decrypts this agent's memories",
		Long: `Print this identity's X25519 secret key as an age identity, so the age tool
reads memories encrypted to this agent:

  mmogit key export --age --yes > id.txt && age -d -i id.txt

It is derived from the seed phrase (the clamped SHA-512 of the Ed25519 seed,
the scalar Ed25519 and tor use), so it decrypts every memory addressed to
this agent, past and future. Keep it as secret as the seed phrase. It is
never logged; printing it on a terminal needs --yes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !ageFmt {
				return &usageError{errors.New("say what to export: --age (the only format so far)")}
			}
			if isTTY(g.stdout) && !yes {
				return &usageError{errors.New("refusing to print a secret key on a terminal (scrollback, screen sharing); redirect it to a file or pass --yes")}
			}
			id, err := identity.Load(g.configDir)
			if err != nil {
				return err
			}
			s, err := seal.IdentityString(id.Private)
			if err != nil {
				return err
			}
			return g.emit(keyExportResult{AgeIdentity: s}, func(w io.Writer) { fmt.Fprintln(w, s) })
		},
	}
	cmd.Flags().BoolVar(&ageFmt, "age", false, "export the age X25519 identity (AGE-SECRET-KEY-1…)")
	cmd.Flags().BoolVar(&yes, "yes", false, "print the secret even when stdout is a terminal")
	return cmd
}

// isTTY reports whether w is a terminal. Unlike isTerminal (any character
// device) it asks the tty driver, so redirecting to /dev/null is allowed.
func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
