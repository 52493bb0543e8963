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
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// initArgs are the flags of `mmogit init`.
type initArgs struct {
	seedPhrase     string // --seed-phrase: restore from these words instead of generating (visible in ps)
	seedPhraseFile string // --seed-phrase-file: restore from the phrase in this file, "-" = stdin
	restore        bool   // --restore: ask for the phrase on the terminal, without echo
	noVerify       bool   // --no-verify: skip the three-word confirmation
	force          bool   // --force: replace an existing identity
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
		Short: "Create an identity from a new 24-word seed, or restore one (--restore, --seed-phrase-file)",
		Long: `Create this agent's identity.

Without flags a new 24-word BIP39 mnemonic is generated and shown once; write
it down, it is the only way to recover the identity. You are then asked to
confirm three of the words (skip with --no-verify).

To restore an identity, give its phrase in one of three ways:
  --restore               asks for it on the terminal, without echo
  --seed-phrase-file F    reads it from file F (one line), or from stdin with -
  --seed-phrase "..."     on the command line: the words then show up in ps
                          and your shell history, so init warns about it
A valid BIP39 mnemonic gives the same key as the reference mmogit; any other
phrase is hashed ("YOLO mode"), which is only as strong as the phrase.

With --json (for agents and scripts) a new mnemonic is returned in the
"mnemonic" field of the JSON result instead of being printed, and there is no
interactive confirmation: --json without --seed-phrase requires --no-verify,
so that the caller acknowledges it must store the words itself.

The seed is stored in <config-dir>/.seed with mode 0600. The config dir is
created with mode 0700; an existing one that others can read or write is
changed to 0700 (said on stderr), since the agent refuses it otherwise. init
refuses to run when <config-dir>/.seed exists (whatever its state) unless
--force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(a) },
	}
	f := cmd.Flags()
	f.StringVar(&a.seedPhrase, "seed-phrase", "", "restore from this BIP39 mnemonic (or any phrase, YOLO mode); visible to other users in ps, prefer --restore or --seed-phrase-file")
	f.StringVar(&a.seedPhraseFile, "seed-phrase-file", "", "restore from the phrase in this file (one line); - reads it from stdin")
	f.BoolVar(&a.restore, "restore", false, "restore: ask for the seed phrase on the terminal, without echo")
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
	phrase, err := restorePhrase(a)
	if err != nil {
		return err
	}
	if phrase == "" && g.json && !a.noVerify {
		return errors.New("init: --json needs --no-verify when generating a new mnemonic: the words are returned in the JSON result, so they cannot be confirmed interactively first; nothing was saved")
	}
	// Before anything is shown: a mnemonic printed for a config dir the
	// agent will then refuse is a trap.
	if err := prepareConfigDir(g.configDir, g.stderr); err != nil {
		return err
	}
	generated := false
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

// maxPhraseFile bounds what --seed-phrase-file reads: a phrase is one line.
const maxPhraseFile = 64 << 10

// Terminal access, replaced by tests.
var (
	stdinIsTerminal = term.IsTerminal
	readPassword    = term.ReadPassword
)

// restorePhrase returns the phrase to restore from, or "" when a new
// mnemonic is to be generated. Only --seed-phrase puts the words on the
// command line, where other users see them in ps and the shell keeps them in
// its history; it still works, with a warning.
func restorePhrase(a initArgs) (string, error) {
	given := 0
	for _, set := range []bool{a.seedPhrase != "", a.seedPhraseFile != "", a.restore} {
		if set {
			given++
		}
	}
	if given > 1 {
		return "", &usageError{errors.New("init: use only one of --seed-phrase, --seed-phrase-file and --restore")}
	}
	switch {
	case a.seedPhrase != "":
		fmt.Fprintln(g.stderr, "WARNING: --seed-phrase puts your seed phrase in the process list (ps) and your shell history.\n"+
			"  Prefer `mmogit init --restore` (asks without echo) or `--seed-phrase-file FILE` (- for stdin).")
		return a.seedPhrase, nil
	case a.seedPhraseFile != "":
		return readPhraseFile(a.seedPhraseFile)
	case a.restore:
		f, ok := g.stdin.(*os.File)
		if !ok || !stdinIsTerminal(int(f.Fd())) {
			return "", &usageError{errors.New("init: --restore asks for the seed phrase on a terminal, and stdin is not one; use --seed-phrase-file - to read it from stdin")}
		}
		fmt.Fprint(g.stderr, "Seed phrase (input is not shown): ")
		b, err := readPassword(int(f.Fd()))
		fmt.Fprintln(g.stderr)
		if err != nil {
			return "", fmt.Errorf("init: read seed phrase: %w; nothing was saved", err)
		}
		p := strings.TrimRight(string(b), "\r\n")
		if strings.TrimSpace(p) == "" {
			return "", errors.New("init: no seed phrase entered; nothing was saved")
		}
		return p, nil
	}
	return "", nil
}

// readPhraseFile reads a seed phrase from name ("-" = stdin): one line, its
// line ending not part of the phrase. A YOLO phrase is hashed byte for byte,
// so a second line is refused rather than silently making another key.
func readPhraseFile(name string) (string, error) {
	var r io.Reader
	what := name
	if name == "-" {
		r, what = g.stdin, "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return "", fmt.Errorf("init: --seed-phrase-file: %w", err)
		}
		defer f.Close()
		r = f
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && platform.OthersAccess(fi) != 0 {
			fmt.Fprintf(g.stderr, "WARNING: %s has mode %04o: other users can read your seed phrase. Delete it once restored, or `chmod 600 %s`.\n", name, fi.Mode().Perm(), name)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPhraseFile+1))
	if err != nil {
		return "", fmt.Errorf("init: read seed phrase from %s: %w", what, err)
	}
	if len(b) > maxPhraseFile {
		return "", fmt.Errorf("init: %s holds more than %d bytes; a seed phrase is one line", what, maxPhraseFile)
	}
	p := strings.TrimSuffix(string(b), "\n")
	p = strings.TrimSuffix(p, "\r")
	if strings.ContainsAny(p, "\r\n") {
		return "", fmt.Errorf("init: %s holds more than one line; put the seed phrase alone on one line", what)
	}
	if strings.TrimSpace(p) == "" {
		return "", fmt.Errorf("init: no seed phrase in %s; nothing was saved", what)
	}
	return p, nil
}

// prepareConfigDir creates the config dir with mode 0700, or tightens an
// existing one that others can read or write to 0700, saying so on out: it
// holds the seed, and the agent refuses to run from it otherwise.
func prepareConfigDir(dir string, out io.Writer) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("init: create config dir: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("init: config dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("init: config dir %s is not a directory", dir)
	}
	// On Windows there are no group/other bits to tighten (see
	// platform.OthersAccess).
	if platform.OthersAccess(fi) != 0 {
		perm := fi.Mode().Perm()
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("init: config dir %s has mode %04o, readable by others, and could not be changed: %w; run `chmod 700 %s`", dir, perm, err, dir)
		}
		fmt.Fprintf(out, "init: config dir %s had mode %04o, open to other users; changed it to 0700 (it holds your seed)\n", dir, perm)
	}
	return nil
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
