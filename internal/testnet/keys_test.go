package testnet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func testTools(t testing.TB) tools {
	t.Helper()
	tor, err := exec.LookPath("tor")
	if err != nil {
		t.Fatal(err)
	}
	gencert, err := exec.LookPath("tor-gencert")
	if err != nil {
		t.Fatal(err)
	}
	return tools{tor: tor, gencert: gencert}
}

// TestKeyCache generates authority keys from two goroutines at once (as
// two test binaries would), then checks they agree, are reused, and are
// regenerated when the certificate is about to expire.
func TestKeyCache(t *testing.T) {
	tl := testTools(t)
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		wg   sync.WaitGroup
		keys [2]nodeKeys
		errs [2]error
	)
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = loadOrCreateKeys(ctx, tl, root, "auth0", true) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	if keys[0] != keys[1] {
		t.Fatalf("racing generators disagree: %+v vs %+v", keys[0], keys[1])
	}
	k := keys[0]
	if !isHexFingerprint(k.fingerprint) || !isHexFingerprint(k.v3ident) {
		t.Fatalf("bad keys %+v", k)
	}
	for _, f := range []string{"secret_id_key", "authority_certificate", "authority_signing_key", "ed25519_master_id_secret_key"} {
		if _, err := os.Stat(filepath.Join(k.dir, "keys", f)); err != nil {
			t.Errorf("cache lacks %s: %v", f, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(root, keyCacheVersion, "*.tmp-*")); len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}

	again, err := loadOrCreateKeys(ctx, tl, root, "auth0", true)
	if err != nil || again != k {
		t.Fatalf("second load = %+v, %v; want cached %+v", again, err, k)
	}

	// A certificate that expires within certMinValidity is replaced.
	certPath := filepath.Join(k.dir, "keys", "authority_certificate")
	cert, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(24 * time.Hour).UTC().Format(time.DateTime)
	writeFile(t, certPath, certExpiresRE.ReplaceAllString(string(cert), "dir-key-expires "+soon))
	fresh, err := loadOrCreateKeys(ctx, tl, root, "auth0", true)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.v3ident == k.v3ident {
		t.Error("expiring certificate was not regenerated")
	}

	// installKeys leaves the authority identity key in the cache.
	data := t.TempDir()
	if err := installKeys(fresh, data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(data, "keys", "authority_identity_key")); !os.IsNotExist(err) {
		t.Errorf("authority_identity_key copied into the DataDirectory (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(data, "keys", "authority_certificate")); err != nil {
		t.Error(err)
	}
}
