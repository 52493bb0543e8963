package main

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/spf13/cobra"
)

// initArgs are the flags of `mmogit init`.
type initArgs struct {
	seedPhrase string // --seed-phrase: restore from these words instead of generating
	noVerify   bool   // --no-verify: skip the three-word confirmation
	force      bool   // --force: replace an existing identity
}

// initResult is what `init --json` prints.
type initResult struct {
	Pubkey       string `json:"pubkey"`
	OnionAddress string `json:"onion_address"`
	PeerID       string `json:"peer_id"`
	Mnemonic     string `json:"mnemonic,omitempty"` // only when generated now
	BIP39        bool   `json:"bip39"`
	SeedFile     string `json:"seed_file"`
}

func newInitCmd() *cobra.Command {
	var a initArgs
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create an identity from a new 24-word seed, or restore one with --seed-phrase",
		Long: `Create this agent's identity.

Without flags a new 24-word BIP39 mnemonic is generated and shown once; write
it down, it is the only way to recover the identity. You are then asked to
confirm three of the words (skip with --no-verify).

With --seed-phrase the identity is restored: a valid BIP39 mnemonic gives the
same key as the reference mmogit; any other phrase is hashed ("YOLO mode"),
which is only as strong as the phrase.

With --json (for agents and scripts) a new mnemonic is returned in the
"mnemonic" field of the JSON result instead of being printed, and there is no
interactive confirmation: --json without --seed-phrase requires --no-verify,
so that the caller acknowledges it must store the words itself.

The seed is stored in <config-dir>/.seed with mode 0600. init refuses to run
when <config-dir>/.seed exists (whatever its state) unless --force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(a) },
	}
	f := cmd.Flags()
	f.StringVar(&a.seedPhrase, "seed-phrase", "", "restore from this BIP39 mnemonic (or any phrase, YOLO mode)")
	f.BoolVar(&a.noVerify, "no-verify", false, "do not ask to confirm three words of a new mnemonic")
	f.BoolVar(&a.force, "force", false, "replace an existing identity (its key is lost unless you kept its words)")
	return cmd
}

func runInit(a initArgs) error {
	// Refuse before generating anything: a "shown once" mnemonic that is
	// then not saved is worse than none. Any file at .seed counts, even
	// one Load would reject (bad mode, corrupt): it may be the only copy.
	seed := filepath.Join(g.configDir, identity.SeedFile)
	if _, err := os.Lstat(seed); err == nil && !a.force {
		return fmt.Errorf("init: %w: %s (nothing was changed)", identity.ErrExists, seed)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("init: %w", err)
	}
	if a.seedPhrase == "" && g.json && !a.noVerify {
		return errors.New("init: --json needs --no-verify when generating a new mnemonic: the words are returned in the JSON result, so they cannot be confirmed interactively first; nothing was saved")
	}
	phrase, generated := a.seedPhrase, false
	if phrase == "" {
		m, err := identity.NewMnemonic()
		if err != nil {
			return err
		}
		phrase, generated = m, true
	}
	id, err := identity.FromPhrase(phrase)
	if err != nil {
		return err
	}
	if !id.Mnemonic {
		fmt.Fprintf(g.stderr, "WARNING: YOLO MODE: the phrase is not a valid BIP39 mnemonic.\n"+
			"  Your key is SHA-256 of the phrase; estimated entropy at most %.0f bits (a 24-word mnemonic has 256).\n"+
			"  Anyone who guesses the phrase owns this identity. Prefer `mmogit init` without --seed-phrase.\n",
			identity.EstimateEntropy(phrase))
	}
	if generated && !g.json {
		fmt.Fprintln(g.stdout, "Your 24-word seed phrase (shown once; write it down, it is the only way to recover this identity):")
		fmt.Fprintln(g.stdout)
		for i, w := range strings.Fields(phrase) {
			fmt.Fprintf(g.stdout, "%2d. %-10s", i+1, w)
			if (i+1)%4 == 0 {
				fmt.Fprintln(g.stdout)
			}
		}
		fmt.Fprintln(g.stdout)
	}
	if generated && !a.noVerify {
		if err := confirmWords(strings.Fields(phrase), g.stdin, g.stderr); err != nil {
			return err
		}
	}
	if err := identity.Save(g.configDir, phrase, a.force); err != nil {
		return err
	}
	res := initResult{
		Pubkey: id.PubHex(), OnionAddress: id.OnionAddress(), PeerID: id.PeerID().String(),
		BIP39: id.Mnemonic, SeedFile: seed,
	}
	if generated {
		res.Mnemonic = phrase
	}
	return g.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "Identity created in %s\n", res.SeedFile)
		printNames(w, res.Pubkey, res.OnionAddress, res.PeerID)
	})
}

// confirmWords asks for three random words of the mnemonic so a user who did
// not write it down finds out now, not when the disk dies.
func confirmWords(words []string, in io.Reader, out io.Writer) error {
	idx := map[int]bool{}
	for len(idx) < 3 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(words))))
		if err != nil {
			return err
		}
		idx[int(n.Int64())] = true
	}
	order := make([]int, 0, 3)
	for i := range idx {
		order = append(order, i)
	}
	sort.Ints(order)
	r := bufio.NewReader(in)
	for _, i := range order {
		fmt.Fprintf(out, "Confirm word #%d: ", i+1)
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("init: could not read word #%d (no input); nothing was saved. Rerun and confirm, or pass --no-verify", i+1)
		}
		if strings.TrimSpace(strings.ToLower(line)) != words[i] {
			return fmt.Errorf("init: word #%d does not match; nothing was saved. Run `mmogit init` again", i+1)
		}
	}
	return nil
}

func printNames(w io.Writer, pub, onionAddr, pid string) {
	fmt.Fprintf(w, "pubkey:        %s\n", pub)
	fmt.Fprintf(w, "onion address: %s\n", onionAddr)
	fmt.Fprintf(w, "peer id:       %s\n", pid)
}
