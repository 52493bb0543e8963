package main

import (
	"fmt"
	"io"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/spf13/cobra"
)

// addressResult is what `address --json` prints.
type addressResult struct {
	Pubkey       string `json:"pubkey"`
	OnionAddress string `json:"onion_address"`
	PeerID       string `json:"peer_id"`
}

func newAddressCmd() *cobra.Command {
	var onlyOnion bool
	cmd := &cobra.Command{
		Use:   "address",
		Short: "Print this identity's public key, onion address and libp2p peer ID (offline)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := identity.Load(g.configDir)
			if err != nil {
				return err
			}
			res := addressResult{Pubkey: id.PubHex(), OnionAddress: id.OnionAddress(), PeerID: id.PeerID().String()}
			if onlyOnion && !g.json {
				fmt.Fprintln(g.stdout, res.OnionAddress)
				return nil
			}
			return g.emit(res, func(w io.Writer) { printNames(w, res.Pubkey, res.OnionAddress, res.PeerID) })
		},
	}
	cmd.Flags().BoolVar(&onlyOnion, "onion", false, "print only the onion address (for scripts)")
	return cmd
}
