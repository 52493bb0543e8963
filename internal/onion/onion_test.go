package onion

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from tor's test suite and docs/spec-notes.md (verified against tor 0.4.9.11).
var vectors = []struct {
	name string
	seed string // RFC 8032 seed, empty when only the public key is known
	pub  string
	addr string
}{
	{"tor test vector", "", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"},
	{"rfc8032 test 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"},
	{"rfc8032 test 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "hvabpq7iioevvevxbktu2g36xsojqlgpf3cjndgazvk7ckxumygcmyyd"},
}

func TestEncodeVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			pub := ed25519.PublicKey(mustHex(t, v.pub))
			if v.seed != "" {
				pub = ed25519.NewKeyFromSeed(mustHex(t, v.seed)).Public().(ed25519.PublicKey)
				if hex.EncodeToString(pub) != v.pub {
					t.Fatalf("pub = %x, want %s", pub, v.pub)
				}
			}
			if got := Encode(pub); got != v.addr {
				t.Errorf("Encode = %s, want %s", got, v.addr)
			}
			if got := Hostname(pub); got != v.addr+".onion" {
				t.Errorf("Hostname = %s", got)
			}
			for _, in := range []string{v.addr, v.addr + ".onion", strings.ToUpper(v.addr) + ".ONION", " " + v.addr + " "} {
				got, err := Parse(in)
				if err != nil {
					t.Fatalf("Parse(%q): %v", in, err)
				}
				if !got.Equal(pub) {
					t.Errorf("Parse(%q) = %x", in, got)
				}
				if err := Verify(in, pub); err != nil {
					t.Errorf("Verify(%q): %v", in, err)
				}
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good := vectors[0].addr
	// Flip the version byte: the last base32 char carries its low bits.
	badVersion := good[:55] + "a"
	// Change one character of the key part: the checksum no longer matches.
	badSum := "a" + good[1:]
	if badSum == good {
		badSum = "b" + good[1:]
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrLength},
		{"v2 length", "expyuzz4wqqyqhjn.onion", ErrLength},
		{"too long", good + "a", ErrLength},
		{"bad base32", "1" + good[1:], ErrBase32},
		{"padding char", "=" + good[1:], ErrBase32},
		// "vkl73" with the Kelvin sign U+212A for 'k': strings.ToLower
		// would fold it to an ASCII 'k' and accept the address.
		{"kelvin sign", strings.Replace(good, "vkl73", "v\u212Al73", 1), ErrBase32},
		{"kelvin sign, upper", strings.ToUpper(strings.Replace(good, "vkl73", "v\u212Al73", 1)), ErrBase32},
		{"non-ascii space", good + "\u00a0", ErrBase32},
		{"fullwidth letter", "\uff52" + good[1:], ErrBase32},
		{"latin-1 byte", "\xe9" + good[1:], ErrBase32},
		{"inner space", good[:10] + " " + good[11:], ErrBase32},
		{"version", badVersion, ErrVersion},
		{"checksum", badSum, ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.in, err, tt.want)
			}
			if Valid(tt.in) {
				t.Errorf("Valid(%q) = true", tt.in)
			}
		})
	}
}

func TestVerifyMismatch(t *testing.T) {
	other := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	err := Verify(vectors[0].addr, other)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify with other key = %v, want ErrMismatch", err)
	}
}

// TestExpandKeyMatchesTor checks what tor does with the ADD_ONION key:
// the scalar half of the expanded key, times the Ed25519 base point, is the
// service's public key (whose address tor publishes), and the other half is
// SHA-512(seed)[32:], tor's nonce prefix for signing. The point arithmetic
// is done here from the curve definition (RFC 8032 §5.1), independently of
// crypto/ed25519; an unclamped or otherwise wrong scalar gives another
// point.
func TestExpandKeyMatchesTor(t *testing.T) {
	for _, v := range vectors {
		if v.seed == "" {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			seed := mustHex(t, v.seed)
			priv := ed25519.NewKeyFromSeed(seed)
			k := ExpandKey(priv)
			if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
				t.Fatalf("scalar not clamped: %x", k[:32])
			}
			h := sha512.Sum512(seed)
			if !bytes.Equal(k[32:], h[32:]) {
				t.Errorf("prefix half = %x, want SHA-512(seed)[32:] = %x", k[32:], h[32:])
			}
			pub := edScalarBaseMult(k[:32])
			if hex.EncodeToString(pub) != v.pub {
				t.Fatalf("scalar·B = %x, want the public key %s", pub, v.pub)
			}
			if Encode(pub) != v.addr {
				t.Errorf("address of scalar·B = %s, want %s", Encode(pub), v.addr)
			}
			// The unclamped scalar is a different point: tor would publish
			// another address (docs/spec-notes.md).
			if bytes.Equal(edScalarBaseMult(h[:32]), pub) {
				t.Errorf("unclamped scalar gives the same point: the check proves nothing")
			}
		})
	}
}

func TestSecretKeyFile(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(mustHex(t, vectors[1].seed))
	k := ExpandKey(priv)
	file := MarshalSecretKeyFile(priv)
	if len(file) != 96 || !strings.HasPrefix(string(file), "== ed25519v1-secret: type0 ==\x00\x00\x00") {
		t.Fatalf("bad key file %q", file[:32])
	}
	got, err := ParseSecretKeyFile(file)
	if err != nil || got != k {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := ParseSecretKeyFile(file[:95]); !errors.Is(err, ErrKeyFile) {
		t.Errorf("short file: %v", err)
	}
	bad := append([]byte{}, file...)
	bad[0] = 'x'
	if _, err := ParseSecretKeyFile(bad); !errors.Is(err, ErrKeyFile) {
		t.Errorf("bad header: %v", err)
	}
	if want := "ED25519-V3:" + base64.StdEncoding.EncodeToString(k[:]); AddOnionKey(priv) != want {
		t.Errorf("AddOnionKey = %s, want %s", AddOnionKey(priv), want)
	}
}

// Edwards25519 (RFC 8032 §5.1): -x² + y² = 1 + d·x²·y² over GF(2^255-19),
// in affine coordinates with math/big. Slow and not constant-time: a test
// oracle only.
var (
	edP  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	edD  = edMul(big.NewInt(-121665), new(big.Int).ModInverse(big.NewInt(121666), edP))
	edBx = edInt("15112221349535400772501151409588531511454012693041857206046113283949847762202")
	edBy = edInt("46316835694926478169428394003475163141307993866256225615783033603165251855960")
)

func edInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

func edMul(a, b *big.Int) *big.Int { return new(big.Int).Mod(new(big.Int).Mul(a, b), edP) }

// edAdd is the complete addition law (also used for doubling).
func edAdd(x1, y1, x2, y2 *big.Int) (*big.Int, *big.Int) {
	t := edMul(edD, edMul(edMul(x1, x2), edMul(y1, y2)))
	one := big.NewInt(1)
	xn := new(big.Int).Add(edMul(x1, y2), edMul(x2, y1))
	yn := new(big.Int).Add(edMul(y1, y2), edMul(x1, x2))
	xd := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Add(one, t), edP), edP)
	yd := new(big.Int).ModInverse(new(big.Int).Mod(new(big.Int).Sub(one, t), edP), edP)
	return edMul(xn, xd), edMul(yn, yd)
}

// edScalarBaseMult returns the encoding of s·B for the 32-byte little-endian
// scalar s: y little-endian with the low bit of x in the top bit.
func edScalarBaseMult(s []byte) []byte {
	be := make([]byte, len(s))
	for i, b := range s {
		be[len(s)-1-i] = b
	}
	n := new(big.Int).SetBytes(be)
	x, y := big.NewInt(0), big.NewInt(1) // the neutral element
	for i := n.BitLen() - 1; i >= 0; i-- {
		x, y = edAdd(x, y, x, y)
		if n.Bit(i) == 1 {
			x, y = edAdd(x, y, edBx, edBy)
		}
	}
	out := make([]byte, 32)
	y.FillBytes(out)
	for i, j := 0, 31; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	out[31] |= byte(x.Bit(0)) << 7
	return out
}

func FuzzParse(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.addr)
		f.Add(v.addr + ".onion")
	}
	f.Add("expyuzz4wqqyqhjn.onion")
	f.Add("")
	f.Add(strings.Replace(vectors[0].addr, "vkl73", "v\u212Al73", 1))
	f.Fuzz(func(t *testing.T, s string) {
		pub, err := Parse(s)
		if err != nil {
			return
		}
		// Only ASCII is ever accepted ...
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				t.Fatalf("Parse(%q) accepted a non-ASCII byte at %d", s, i)
			}
		}
		// ... and, lowercased byte by byte (not with Unicode case folding,
		// which is what let the Kelvin sign through), it is the canonical
		// address, with or without the suffix.
		low := []byte(strings.Trim(s, " \t\n\v\f\r"))
		for i, c := range low {
			if 'A' <= c && c <= 'Z' {
				low[i] = c + 'a' - 'A'
			}
		}
		if l := string(low); l != Encode(pub) && l != Hostname(pub) {
			t.Fatalf("Parse(%q) accepted; lowercase %q is neither %s nor %s", s, l, Encode(pub), Hostname(pub))
		}
		if Normalize(s) != Encode(pub) {
			t.Fatalf("Normalize(%q) = %q, want %s", s, Normalize(s), Encode(pub))
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	pub := ed25519.PublicKey(mustHex(b, vectors[0].pub))
	for b.Loop() {
		Encode(pub)
	}
}

func BenchmarkVerify(b *testing.B) {
	pub := ed25519.PublicKey(mustHex(b, vectors[0].pub))
	for b.Loop() {
		if err := Verify(vectors[0].addr, pub); err != nil {
			b.Fatal(err)
		}
	}
}

func TestClientKeys(t *testing.T) {
	k, err := NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, priv := EncodeClientPublicKey(k.PublicKey()), EncodeClientPrivateKey(k)
	if len(pub) != 52 || len(priv) != 44 {
		t.Fatalf("encoded lengths %d, %d; want 52, 44", len(pub), len(priv))
	}
	for _, s := range []string{pub, strings.ToLower(pub), "descriptor:x25519:" + pub, " " + pub + "\n"} {
		p, err := ParseClientPublicKey(s)
		if err != nil || !p.Equal(k.PublicKey()) {
			t.Errorf("ParseClientPublicKey(%q) = %v, %v", s, p, err)
		}
	}
	for _, s := range []string{priv, "x25519:" + priv} {
		p, err := ParseClientPrivateKey(s)
		if err != nil || !p.Equal(k) {
			t.Errorf("ParseClientPrivateKey(%q) = %v", s, err)
		}
	}
	bad := []struct {
		name string
		s    string
		pub  bool
	}{
		{"public: empty", "", true},
		{"public: too short", pub[:51], true},
		{"public: not base32", "1" + pub[1:], true},
		{"public: the private form", priv, true},
		{"private: empty", "", false},
		{"private: too short", priv[:40], false},
		{"private: not base64", "!" + priv[1:], false},
		{"private: the public form", pub, false},
		{"public: all zeros (low order)", strings.Repeat("A", 52), true},
		{"public: 1 (low order)", EncodeClientPublicKey(mustPub(t, append([]byte{1}, make([]byte, 31)...))), true},
	}
	for _, tt := range bad {
		var err error
		if tt.pub {
			_, err = ParseClientPublicKey(tt.s)
			if err != nil && len(tt.s) > 8 && strings.Contains(err.Error(), tt.s[:8]) {
				t.Errorf("%s: error echoes the value: %v", tt.name, err)
			}
		} else {
			_, err = ParseClientPrivateKey(tt.s)
			if err != nil && tt.s != "" && strings.Contains(err.Error(), tt.s[:8]) {
				t.Errorf("%s: error echoes the private key: %v", tt.name, err)
			}
		}
		if !errors.Is(err, ErrClientKey) {
			t.Errorf("%s: err = %v, want ErrClientKey", tt.name, err)
		}
	}
}

// TestClientKeyVector: the private key of 32 bytes 0x01 and its public key
// as Python's cryptography (X25519PrivateKey.from_private_bytes) computes.
func TestClientKeyVector(t *testing.T) {
	priv, err := ParseClientPrivateKey("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseClientPublicKey("UTQJFEVWKHBHROLXFRLJ6X5JXMJ5SBVUNK3IZHPZ3QVUICPYUIEQ")
	if err != nil {
		t.Fatal(err)
	}
	if !priv.PublicKey().Equal(pub) {
		t.Fatalf("public key of the vector = %s", EncodeClientPublicKey(priv.PublicKey()))
	}
}

func mustPub(t *testing.T, b []byte) *ecdh.PublicKey {
	t.Helper()
	k, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
