package identity

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/mmogit/mmogit/internal/onion"
)

const abandon = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

func TestFromPhraseVectors(t *testing.T) {
	tests := []struct {
		name     string
		phrase   string
		seed     string // expected Ed25519 seed, hex
		mnemonic bool
	}{
		// BIP39 seed of the "abandon … about" vector with an empty
		// passphrase is 5eb00bbd…; its first 32 bytes are the Ed25519 seed.
		{"bip39 12 words", abandon, "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1", true},
		{"bip39 extra spaces", "  " + strings.ReplaceAll(abandon, " ", "   ") + "\n", "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc1", true},
		{"yolo", "correct horse battery staple", yolo("correct horse battery staple"), false},
		{"bad checksum is yolo", strings.Replace(abandon, "about", "abandon", 1), yolo(strings.Replace(abandon, "about", "abandon", 1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := FromPhrase(tt.phrase)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(id.Private.Seed()); got != tt.seed {
				t.Errorf("seed = %s, want %s", got, tt.seed)
			}
			if id.Mnemonic != tt.mnemonic {
				t.Errorf("Mnemonic = %v", id.Mnemonic)
			}
		})
	}
	if _, err := FromPhrase("   "); err == nil {
		t.Error("empty phrase accepted")
	}
}

func yolo(p string) string {
	h := sha256.Sum256([]byte(p + "mmogit-sovereignty-salt"))
	return hex.EncodeToString(h[:])
}

// TestBIP39MatchesPBKDF2 cross-checks the BIP39 library against the standard
// library's PBKDF2 for freshly generated 24-word mnemonics.
func TestBIP39MatchesPBKDF2(t *testing.T) {
	for range 3 {
		m, err := NewMnemonic()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(m)); n != 24 {
			t.Fatalf("%d words", n)
		}
		seed, err := pbkdf2.Key(sha512.New, m, []byte("mnemonic"), 2048, 64)
		if err != nil {
			t.Fatal(err)
		}
		id, err := FromPhrase(m)
		if err != nil || !id.Mnemonic {
			t.Fatalf("fresh mnemonic not recognised: %v", err)
		}
		if !strings.EqualFold(hex.EncodeToString(id.Private.Seed()), hex.EncodeToString(seed[:32])) {
			t.Fatal("BIP39 seed mismatch with PBKDF2")
		}
	}
}

func TestNames(t *testing.T) {
	id := FromSeed(mustHex(t, "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
	if id.PubHex() != "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a" {
		t.Fatal(id.PubHex())
	}
	if id.OnionAddress() != "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion" {
		t.Fatal(id.OnionAddress())
	}
	if id.Branch() != "users/d75a9801" {
		t.Fatal(id.Branch())
	}
	pid := id.PeerID()
	if !strings.HasPrefix(pid.String(), "12D3KooW") {
		t.Fatalf("peer id %s", pid)
	}
	fromOnion, err := PeerIDFromOnion(id.OnionAddress())
	if err != nil || fromOnion != pid {
		t.Fatalf("PeerIDFromOnion = %s, %v", fromOnion, err)
	}
	pub, err := PublicFromPeerID(pid)
	if err != nil || !pub.Equal(id.Public) {
		t.Fatalf("PublicFromPeerID: %v", err)
	}
	if _, err := PeerIDFromOnion("nonsense.onion"); !errors.Is(err, onion.ErrLength) {
		t.Fatalf("bad onion: %v", err)
	}
	if !id.Libp2pKey().GetPublic().Equals(mustPub(t, pid)) {
		t.Fatal("libp2p key mismatch")
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cfg")
	if _, err := Load(dir); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Load empty = %v", err)
	}
	if err := Save(dir, abandon, false); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, SeedFile))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed mode %v", fi.Mode())
	}
	di, _ := os.Stat(dir)
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v", di.Mode())
	}
	if err := Save(dir, "other", false); !errors.Is(err, ErrExists) {
		t.Fatalf("overwrite without force = %v", err)
	}
	id, err := Load(dir)
	if err != nil || !id.Mnemonic {
		t.Fatalf("Load = %v", err)
	}
	// YOLO phrases keep their exact bytes, including inner spacing.
	if err := Save(dir, "two  spaces", true); err != nil {
		t.Fatal(err)
	}
	id, err = Load(dir)
	if err != nil || hex.EncodeToString(id.Private.Seed()) != yolo("two  spaces") {
		t.Fatalf("yolo round trip: %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		os.Chmod(filepath.Join(dir, SeedFile), mode)
		var pe *PermissionError
		if _, err := Load(dir); !errors.As(err, &pe) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
}

func TestEstimateEntropy(t *testing.T) {
	if e := EstimateEntropy("aaaa"); e < 18 || e > 19 {
		t.Errorf("aaaa = %v", e)
	}
	if EstimateEntropy("Aa1!Aa1!") <= EstimateEntropy("aaaaaaaa") {
		t.Error("mixed classes should estimate higher")
	}
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPub(t *testing.T, pid interface{ ExtractPublicKey() (crypto.PubKey, error) }) crypto.PubKey {
	k, err := pid.ExtractPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func FuzzFromPhrase(f *testing.F) {
	f.Add(abandon)
	f.Add("correct horse battery staple")
	f.Add("")
	f.Add("  \n\t ")
	f.Add(strings.Repeat("zoo ", 24))
	f.Fuzz(func(t *testing.T, phrase string) {
		id, err := FromPhrase(phrase)
		if err != nil {
			if strings.TrimSpace(phrase) != "" && len(strings.Fields(phrase)) > 0 {
				t.Fatalf("non-empty phrase %q rejected: %v", phrase, err)
			}
			return
		}
		// Derivation is deterministic and the names are consistent.
		again, _ := FromPhrase(phrase)
		if !again.Public.Equal(id.Public) {
			t.Fatal("derivation not deterministic")
		}
		if _, err := PeerIDFromOnion(id.OnionAddress()); err != nil {
			t.Fatal(err)
		}
		if id.Mnemonic != IsMnemonic(phrase) {
			t.Fatal("Mnemonic flag disagrees with IsMnemonic")
		}
	})
}

func TestParsePeerKey(t *testing.T) {
	id := FromSeed(make([]byte, 32))
	good := []string{id.PubHex(), id.OnionAddress(), strings.TrimSuffix(id.OnionAddress(), ".onion"), strings.ToUpper(id.OnionAddress()), id.PeerID().String(), " " + id.PubHex() + "\n"}
	for _, s := range good {
		pub, err := ParsePeerKey(s)
		if err != nil {
			t.Errorf("ParsePeerKey(%q): %v", s, err)
			continue
		}
		if !pub.Equal(id.Public) {
			t.Errorf("ParsePeerKey(%q) = %x, want %x", s, pub, id.Public)
		}
	}
	bad := map[string]string{
		"":                     "empty",
		id.PubHex()[:8]:        "prefix",
		"zz" + id.PubHex()[2:]: "not a 64-hex key",
		id.OnionAddress()[1:]:  "not a valid onion address",
		"hello":                "not a 64-hex key",
	}
	for s, want := range bad {
		_, err := ParsePeerKey(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePeerKey(%q) = %v, want an error containing %q", s, err, want)
		}
	}
}
