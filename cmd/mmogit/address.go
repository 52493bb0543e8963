package main

import (
	"fmt"
	"io"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/spf13/cobra"
)

// addressResult is what `address --json` prints.
type addressResult struct {
	Pubkey       string `json:"pubkey"`
	OnionAddress string `json:"onion_address"`
	PeerID       string `json:"peer_id"`
	// AgeRecipient (age1…) is the same key in X25519 form: `age -r` with
	// it encrypts to this agent (see package seal).
	AgeRecipient string `json:"age_recipient"`
}

func newAddressCmd() *cobra.Command {
	var onlyOnion bool
	cmd := &cobra.Command{
		Use:   "address",
		Short: "Print this identity's public key, onion address, libp2p peer ID and age recipient (offline)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := identity.Load(g.configDir)
			if err != nil {
				return err
			}
			rec, err := seal.RecipientString(id.Public)
			if err != nil {
				return err
			}
			res := addressResult{Pubkey: id.PubHex(), OnionAddress: id.OnionAddress(), PeerID: id.PeerID().String(), AgeRecipient: rec}
			if onlyOnion && !g.json {
				fmt.Fprintln(g.stdout, res.OnionAddress)
				return nil
			}
			return g.emit(res, func(w io.Writer) {
				printNames(w, res.Pubkey, res.OnionAddress, res.PeerID)
				fmt.Fprintf(w, "age recipient: %s\n", res.AgeRecipient)
			})
		},
	}
	cmd.Flags().BoolVar(&onlyOnion, "onion", false, "print only the onion address (for scripts)")
	return cmd
}
