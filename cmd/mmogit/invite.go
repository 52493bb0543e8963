package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newInviteCmd, newJoinCmd) }

// inviteOut is what `mmogit --json invite` prints.
type inviteOut struct {
	Invite  string    `json:"invite"`
	Onion   string    `json:"onion_address"`
	Read    bool      `json:"read"`
	Write   bool      `json:"write"`
	Expires time.Time `json:"expires"`
}

func newInviteCmd() *cobra.Command {
	var read, write bool
	var expires time.Duration
	cmd := &cobra.Command{
		Use:   "invite [--read] [--write] [--expires 24h]",
		Short: "Make a one-time invite line another agent joins with (`mmogit join LINE`)",
		Long: `Print one line that another agent pastes into ` + "`mmogit join`" + `. When it
joins (over Tor, to this agent's onion service, while this agent runs), each
side adds the other to its trust list: the joiner gets the roles named here
(--read: it receives everything you hold; --write: its messages are stored
here; with neither flag, both), and it trusts you with read and write unless
it says otherwise.

The line holds a one-time secret: whoever has it can join once before it
expires. This agent keeps only the secret's hash (<config-dir>/invites/).
A used or expired invite is refused and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires <= 0 {
				return &usageError{fmt.Errorf("--expires %v must be positive", expires)}
			}
			inv, note, err := invite.Issue(g.configDir, read, write, expires, time.Now())
			if err != nil {
				return err
			}
			out := inviteOut{Invite: inv.String(), Onion: inv.Onion, Read: inv.Read, Write: inv.Write, Expires: inv.Expires}
			if note != "" {
				g.infof("note: %s\n", note)
			}
			return g.emit(out, func(w io.Writer) {
				fmt.Fprintln(w, out.Invite)
				g.infof("one use, until %s; grants %s; the other agent runs: mmogit join <line>\n", out.Expires.Local().Format(time.RFC3339), rolesText(out.Read, out.Write))
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&read, "read", false, "the joiner receives everything you hold")
	f.BoolVar(&write, "write", false, "the joiner's messages are stored here (up to the daily quota)")
	f.DurationVar(&expires, "expires", 24*time.Hour, "how long the invite can be used")
	return cmd
}

func rolesText(read, write bool) string {
	switch {
	case read && write:
		return "read and write"
	case read:
		return "read"
	case write:
		return "write"
	}
	return "no role"
}

func newJoinCmd() *cobra.Command {
	var read, write bool
	var alias string
	cmd := &cobra.Command{
		Use:   "join INVITE [--read] [--write] [--alias NAME]",
		Short: "Join the agent that made an invite line; both sides trust each other",
		Long: `Redeem an invite line from ` + "`mmogit invite`" + ` through the running agent (start it
with ` + "`mmogit tor start`" + `). On success the inviter trusts this agent with the
roles its invite names, and this agent trusts the inviter with --read and
--write (both when neither is given).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := invite.Parse(args[0]); err != nil {
				return &usageError{err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Minute)
			defer cancel()
			g.infof("joining over tor...\n")
			res, err := apiClient().Join(ctx, localapi.JoinRequest{Invite: args[0], Read: read, Write: write, Alias: alias})
			if err != nil {
				return err
			}
			return g.emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "joined %s: it gave you %s; you trust it with %s\n", res.OnionAddress,
					rolesText(res.GrantedRead, res.GrantedWrite), rolesText(res.TrustedRead, res.TrustedWrite))
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&read, "read", false, "the inviter receives everything you hold")
	f.BoolVar(&write, "write", false, "the inviter's messages are stored here")
	f.StringVar(&alias, "alias", "", "a name for the inviter")
	return cmd
}
