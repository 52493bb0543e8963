package main

import (
	"fmt"
	"io"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/spf13/cobra"
)

// authKeyOut is the result of `tor auth-key`.
type authKeyOut struct {
	PublicKey  string `json:"public_key"`  // for the restricted agent's tor.authorized_clients
	PrivateKey string `json:"private_key"` // for the client's tor.client_auth[<onion address>]
}

func newAuthKeyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "auth-key",
		Short: "Generate a client authorization key pair for a restricted onion service (offline)",
		Long: `Generate an x25519 key pair for onion-service client authorization.

An agent whose tor.json lists public keys in "tor": {"authorized_clients":
[...]} publishes a restricted onion service: tor refuses every client that
does not hold one of the matching private keys (SOCKS error 0xF4, kind
onion_auth), before the agent sees a byte.

Give the public key to the operator of the restricted agent. Put the private
key in your own tor.json under "tor": {"client_auth": {"<their onion
address>": "<private key>"}} and restart your agent. The private key is a
secret: anyone holding it can reach that agent.

A restricted agent must use "transport": "tor" (a TCP listener would let
anyone in), and client_auth needs the agent's own tor, not tor.attach.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := onion.NewClientKey()
			if err != nil {
				return fmt.Errorf("generate client authorization key: %w", err)
			}
			out := authKeyOut{PublicKey: onion.EncodeClientPublicKey(k.PublicKey()), PrivateKey: onion.EncodeClientPrivateKey(k)}
			return g.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "public key (for the restricted agent's tor.authorized_clients):\n  %s\n", out.PublicKey)
				fmt.Fprintf(w, "private key (secret; for your tor.client_auth[\"<its onion address>\"]):\n  %s\n", out.PrivateKey)
			})
		},
	}
}
