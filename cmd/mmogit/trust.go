package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newTrustCmd) }

// trustOut is the JSON form of a trust entry (`--json trust list` rows).
type trustOut struct {
	PeerID       string `json:"peer_id"`
	OnionAddress string `json:"onion_address"`
	Key          string `json:"key"`
	Alias        string `json:"alias,omitempty"`
	Read         bool   `json:"read"`
	Write        bool   `json:"write"`
	Via          string `json:"via,omitempty"`
}

func toTrustOut(e trust.Entry) trustOut {
	return trustOut{PeerID: e.PeerID, OnionAddress: e.OnionAddress, Key: e.Key, Alias: e.Alias, Read: e.Read, Write: e.Write, Via: e.Via}
}

func roles(e trust.Entry) string {
	switch {
	case e.Read && e.Write:
		return "read,write"
	case e.Read:
		return "read"
	case e.Write:
		return "write"
	}
	return "none"
}

func newTrustCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trust",
		Short: "Choose which peers may read your memories and which may write into your store",
		Long: `The trust list (<config-dir>/trust.json) gives peers roles:

  read   a sync sends the peer everything you hold (ciphertext included: it
         decrypts only what is addressed to it);
  write  the peer's verified messages are stored here, up to a daily quota
         (tor.json "sync": quota_messages_per_day, quota_bytes_per_day).

A peer without a role receives only your --public posts and your posts
addressed to it with --to, and stores nothing here. A running agent applies
changes at its next sync, without a restart.`,
	}
	cmd.AddCommand(newTrustAddCmd(), newTrustListCmd(), newTrustRemoveCmd())
	return cmd
}

func newTrustAddCmd() *cobra.Command {
	var read, write bool
	var alias string
	cmd := &cobra.Command{
		Use:   "add PEER [--read] [--write] [--alias NAME]",
		Short: "Give a peer (onion address, peer ID or 64-hex key) roles; with neither flag, --read --write",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireIdentityDir(); err != nil {
				return err
			}
			l, err := trust.Load(g.configDir)
			if err != nil {
				return err
			}
			pub, err := l.Resolve(args[0])
			if err != nil {
				return &usageError{err}
			}
			if id, err := identity.Load(g.configDir); err == nil && id.Public.Equal(pub) {
				return &usageError{fmt.Errorf("trust: %s is this agent's own address", args[0])}
			}
			if !read && !write {
				read, write = true, true
			}
			e, err := trust.Set(g.configDir, pub, read, write, alias, "trust add")
			if err != nil {
				return err
			}
			return g.emit(toTrustOut(e), func(w io.Writer) {
				fmt.Fprintf(w, "trusted %s (%s): %s\n", e.OnionAddress, e.Label(), roles(e))
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&read, "read", false, "the peer receives everything you hold")
	f.BoolVar(&write, "write", false, "the peer's messages are stored here (up to the daily quota)")
	f.StringVar(&alias, "alias", "", "a name to show for the peer and to use with --author")
	return cmd
}

func newTrustListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List trusted peers and their roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := trust.Load(g.configDir)
			if err != nil {
				return err
			}
			outs := []trustOut{}
			for _, e := range l.Entries() {
				outs = append(outs, toTrustOut(e))
			}
			return g.emit(outs, func(w io.Writer) {
				if len(outs) == 0 {
					fmt.Fprintln(w, "nobody is trusted: strangers receive only your --public posts and store nothing here; add a peer with `mmogit trust add ADDRESS`")
					return
				}
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ALIAS\tROLES\tONION ADDRESS\tPEER ID")
				for _, e := range l.Entries() {
					alias := e.Alias
					if alias == "" {
						alias = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", printable(alias), roles(e), e.OnionAddress, e.PeerID)
				}
				tw.Flush()
			})
		},
	}
}

func newTrustRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove PEER",
		Short: "Take every role from a peer (alias, onion address, peer ID or 64-hex key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := trust.Remove(g.configDir, args[0])
			if err != nil {
				return err
			}
			return g.emit(toTrustOut(e), func(w io.Writer) {
				fmt.Fprintf(w, "removed %s (%s); it is a stranger again\n", e.OnionAddress, e.Label())
			})
		},
	}
}

// requireIdentityDir fails early when the config dir does not exist.
func requireIdentityDir() error {
	if _, err := os.Stat(g.configDir); err != nil {
		return fmt.Errorf("config dir %s: %w; create an identity with `mmogit init`", g.configDir, err)
	}
	return nil
}
