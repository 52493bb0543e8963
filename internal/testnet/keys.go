package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/platform"
)

// Key generation is the slow part of setting up a network (~0.6 s of RSA
// per authority plus a tor start per node), so keys are cached across runs.
//
// A node's keys do not depend on its ports: the relay identity never names
// an address, and although tor-gencert writes the -a address into the
// authority certificate's dir-address line, tor 0.4.9 never compares it
// with the DirAuthority line (checked: networks whose certificates name
// 127.0.0.1:1 bootstrap normally). So cached keys work with fresh ports.

// keyCacheVersion names the cache layout; bump it when the layout changes.
const keyCacheVersion = "v1"

// certPlaceholderAddr is the dir-address written into cached authority
// certificates; see above for why any address does.
const certPlaceholderAddr = "127.0.0.1:1"

// certMinValidity is how long a cached authority certificate must still be
// valid to be reused; tor-gencert -m 12 makes them valid for a year.
const certMinValidity = 30 * 24 * time.Hour

// nodeKeys are one node's long-term keys in the cache.
type nodeKeys struct {
	dir         string // holds keys/, the DataDirectory/keys of the node
	fingerprint string // RSA identity fingerprint, 40 hex digits
	v3ident     string // authorities: the certificate fingerprint
}

// defaultKeyCache is where keys live when Options.KeyCache is empty.
func defaultKeyCache() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "mmogit-testnet-keys"), nil
}

// tools are the binaries the network runs.
type tools struct {
	tor     string
	gencert string
	obfs4   string // empty unless a bridge is wanted
}

// loadOrCreateKeys returns the cached keys for nick under root, creating
// them if they are missing or (for authorities) about to expire. Several
// test binaries may do this at once; a lock file per node serialises them,
// and keys are generated in a private directory and renamed into place so
// that a crash never leaves half an entry.
func loadOrCreateKeys(ctx context.Context, t tools, root, nick string, isAuthority bool) (nodeKeys, error) {
	final := filepath.Join(root, keyCacheVersion, nick)
	if k, err := readKeys(final, isAuthority); err == nil {
		return k, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return nodeKeys{}, fmt.Errorf("testnet: key cache: %w", err)
	}
	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return nodeKeys{}, fmt.Errorf("testnet: key cache: %w", err)
	}
	defer unlock()
	// Whoever held the lock before us may have made the keys.
	if k, err := readKeys(final, isAuthority); err == nil {
		return k, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), nick+".tmp-")
	if err != nil {
		return nodeKeys{}, fmt.Errorf("testnet: key cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := generateKeys(ctx, t, tmp, nick, isAuthority); err != nil {
		return nodeKeys{}, err
	}
	// An expired or broken entry has to go first: rename(2) will not
	// replace a non-empty directory.
	if err := os.RemoveAll(final); err != nil {
		return nodeKeys{}, fmt.Errorf("testnet: key cache: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return nodeKeys{}, fmt.Errorf("testnet: key cache: %w", err)
	}
	return readKeys(final, isAuthority)
}

// lockFile takes an exclusive lock on path, waiting while ctx allows.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := platform.TryLock(f)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, platform.ErrWouldBlock) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readKeys loads a cache entry, failing if it is incomplete or expiring.
func readKeys(dir string, isAuthority bool) (nodeKeys, error) {
	fp, err := os.ReadFile(filepath.Join(dir, "fingerprint"))
	if err != nil {
		return nodeKeys{}, err
	}
	k := nodeKeys{dir: dir, fingerprint: strings.TrimSpace(string(fp))}
	if !isHexFingerprint(k.fingerprint) {
		return nodeKeys{}, fmt.Errorf("testnet: bad cached fingerprint %q", k.fingerprint)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "secret_id_key")); err != nil {
		return nodeKeys{}, err
	}
	if !isAuthority {
		return k, nil
	}
	cert, err := os.ReadFile(filepath.Join(dir, "keys", "authority_certificate"))
	if err != nil {
		return nodeKeys{}, err
	}
	v3, expires, err := parseCertificate(cert)
	if err != nil {
		return nodeKeys{}, err
	}
	if time.Until(expires) < certMinValidity {
		return nodeKeys{}, fmt.Errorf("testnet: cached certificate expires %v", expires)
	}
	k.v3ident = v3
	return k, nil
}

var (
	certFingerprintRE = regexp.MustCompile(`(?m)^fingerprint ([0-9A-F]{40})$`)
	certExpiresRE     = regexp.MustCompile(`(?m)^dir-key-expires (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)$`)
	hexFingerprintRE  = regexp.MustCompile(`^[0-9A-F]{40}$`)
)

func isHexFingerprint(s string) bool { return hexFingerprintRE.MatchString(s) }

// parseCertificate extracts the v3ident and the expiry from an authority
// key certificate (dir-spec §3.1).
func parseCertificate(cert []byte) (v3ident string, expires time.Time, err error) {
	m := certFingerprintRE.FindSubmatch(cert)
	if m == nil {
		return "", time.Time{}, errors.New("testnet: authority certificate has no fingerprint")
	}
	e := certExpiresRE.FindSubmatch(cert)
	if e == nil {
		return "", time.Time{}, errors.New("testnet: authority certificate has no dir-key-expires")
	}
	expires, err = time.Parse(time.DateTime, string(e[1]))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("testnet: authority certificate: %w", err)
	}
	return string(m[1]), expires, nil
}

// generateKeys creates dir/keys and dir/fingerprint for a new node.
func generateKeys(ctx context.Context, t tools, dir, nick string, isAuthority bool) error {
	data := filepath.Join(dir, "data")
	keys := filepath.Join(data, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return fmt.Errorf("testnet: keys: %w", err)
	}
	if isAuthority {
		// An empty passphrase on stdin leaves the identity key unencrypted.
		cmd := exec.CommandContext(ctx, t.gencert, "--create-identity-key", "--passphrase-fd", "0",
			"-i", filepath.Join(keys, "authority_identity_key"),
			"-s", filepath.Join(keys, "authority_signing_key"),
			"-c", filepath.Join(keys, "authority_certificate"),
			"-m", "12", "-a", certPlaceholderAddr)
		cmd.Stdin = strings.NewReader("")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("testnet: tor-gencert for %s: %w: %s", nick, err, bytes.TrimSpace(out))
		}
	}
	// --list-fingerprint creates the relay identity keys and writes
	// DataDirectory/fingerprint. tor insists on a DirAuthority line under
	// TestingTorNetwork, so the provisional torrc carries a dummy one.
	torrc := filepath.Join(dir, "torrc")
	conf := strings.Join([]string{
		"TestingTorNetwork 1",
		"DirAuthority dummy orport=1 v3ident=" + strings.Repeat("0", 40) + " 127.0.0.1:1 " + strings.Repeat("0", 40),
		"DataDirectory " + data,
		"Nickname " + nick,
		"ORPort 127.0.0.1:1",
		"Address 127.0.0.1",
		"SocksPort 0",
		"Log err stdout",
	}, "\n") + "\n"
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("testnet: keys: %w", err)
	}
	cmd := exec.CommandContext(ctx, t.tor, "--list-fingerprint", "-f", torrc, "--defaults-torrc", os.DevNull)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testnet: tor --list-fingerprint for %s: %w: %s", nick, err, bytes.TrimSpace(out))
	}
	fpLine, err := os.ReadFile(filepath.Join(data, "fingerprint"))
	if err != nil {
		return fmt.Errorf("testnet: keys: %w", err)
	}
	f := strings.Fields(string(fpLine)) // "nick FINGERPRINT"
	if len(f) != 2 || !isHexFingerprint(f[1]) {
		return fmt.Errorf("testnet: unexpected fingerprint file %q", fpLine)
	}
	if err := os.Rename(keys, filepath.Join(dir, "keys")); err != nil {
		return fmt.Errorf("testnet: keys: %w", err)
	}
	if err := os.RemoveAll(data); err != nil {
		return fmt.Errorf("testnet: keys: %w", err)
	}
	os.Remove(torrc)
	return os.WriteFile(filepath.Join(dir, "fingerprint"), []byte(f[1]+"\n"), 0o600)
}

// installKeys copies a node's cached keys into its DataDirectory. The
// authority identity key stays in the cache: tor never reads it.
func installKeys(k nodeKeys, dataDir string) error {
	dst := filepath.Join(dataDir, "keys")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("testnet: install keys: %w", err)
	}
	src := filepath.Join(k.dir, "keys")
	ents, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("testnet: install keys: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "authority_identity_key" {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return fmt.Errorf("testnet: install keys: %w", err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
