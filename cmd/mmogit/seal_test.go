package main

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
)

const (
	phraseA = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	phraseB = "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong"
	phraseC = "legal winner thank year wave sausage worth useful legal winner thank yellow"
)

// cli runs mmogit in process against one config dir, the way the other
// command tests do.
type cli struct {
	t   *testing.T
	dir string
}

// newAgent makes a config dir with the identity of phrase.
func newAgent(t *testing.T, phrase string) cli {
	t.Helper()
	c := cli{t, t.TempDir()}
	c.run("init", "--seed-phrase", phrase)
	return c
}

func (c cli) try(args ...string) (string, error) {
	c.t.Helper()
	var out, errb bytes.Buffer
	*g = globals{stdout: &out, stderr: &errb, stdin: strings.NewReader("")}
	root := newRootCmd()
	root.SetArgs(append([]string{"--config-dir", c.dir}, args...))
	err := root.Execute()
	return out.String(), err
}

func (c cli) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("mmogit %v: %v", args, err)
	}
	return out
}

func (c cli) json(v any, args ...string) {
	c.t.Helper()
	out := c.run(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("mmogit --json %v: %v\n%s", args, err, out)
	}
}

func (c cli) identity() *identity.Identity {
	c.t.Helper()
	id, err := identity.Load(c.dir)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// shareRepo points b's memory repository at a's, as if everything had
// synced.
func shareRepo(t *testing.T, a, b cli) {
	t.Helper()
	if err := os.Symlink(filepath.Join(a.dir, "messages"), filepath.Join(b.dir, "messages")); err != nil {
		t.Fatal(err)
	}
}

type showRow struct {
	memory.Message
	ID        string `json:"id"`
	Valid     bool   `json:"valid"`
	Encrypted bool   `json:"encrypted"`
	Readable  bool   `json:"readable"`
	Sealed    string `json:"sealed"`
}

func (c cli) show() map[string]showRow {
	c.t.Helper()
	var rows []showRow
	c.json(&rows, "show", "--all")
	m := map[string]showRow{}
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

// TestPostSeals: who can read what each post flag produces, and what is
// stored.
func TestPostSeals(t *testing.T) {
	a, b, c := newAgent(t, phraseA), newAgent(t, phraseB), newAgent(t, phraseC)
	shareRepo(t, a, b)
	shareRepo(t, a, c)
	idB := b.identity()
	tests := []struct {
		name      string
		args      []string
		encrypted bool
		readers   []cli // besides the author
		others    []cli
		index     []string
	}{
		{"default", nil, true, nil, []cli{b, c}, nil},
		{"public", []string{"--public"}, false, []cli{b, c}, nil, nil},
		{"to onion", []string{"--to", idB.OnionAddress()}, true, []cli{b}, []cli{c}, []string{idB.PubHex()}},
		{"to hex and self", []string{"--to", idB.PubHex(), "--to", a.identity().PubHex()}, true, []cli{b}, []cli{c}, []string{idB.PubHex()}},
		{"to peer id twice", []string{"--to", idB.PeerID().String(), "--to", idB.OnionAddress()}, true, []cli{b}, []cli{c}, []string{idB.PubHex()}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "secret " + strconv.Itoa(i) + "\nline two"
			var out showRow
			a.json(&out, append([]string{"post", text}, tt.args...)...)
			if out.Encrypted != tt.encrypted || !out.Readable || out.Content != text {
				t.Fatalf("post output %+v", out)
			}
			stored := a.show()[out.ID]
			if !stored.Valid || seal.IsSealed(stored.Sealed) != tt.encrypted || stored.Content != text {
				t.Errorf("author's show: %+v", stored)
			}
			// What is stored and signed is the ciphertext.
			raw := stored.Message
			if tt.encrypted {
				raw.Content = stored.Sealed
			}
			if err := raw.Verify(); err != nil || raw.ID() != out.ID {
				t.Errorf("stored message does not verify as %s: %v", out.ID, err)
			}
			for _, r := range tt.readers {
				if got := r.show()[out.ID]; !got.Readable || got.Content != text || got.Encrypted != tt.encrypted {
					t.Errorf("reader cannot read: %+v", got)
				}
			}
			for _, o := range tt.others {
				got := o.show()[out.ID]
				if got.Readable || !got.Encrypted || got.Content != stored.Sealed || strings.Contains(got.Content, "secret") {
					t.Errorf("non-recipient sees %+v", got)
				}
				if human := o.run("show", "--all"); !strings.Contains(human, out.Author+": [encrypted: not addressed to you]") {
					t.Errorf("non-recipient's show lacks the marker:\n%s", human)
				}
			}
			ix, err := seal.LoadIndex(a.dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := ix.Recipients(out.ID); !slices.Equal(got, tt.index) {
				t.Errorf("index for %s: %v, want %v", out.ID, got, tt.index)
			}
		})
	}
	for _, bad := range [][]string{
		{"post", "x", "--public", "--to", idB.PubHex()},
		{"post", "x", "--to", idB.PubHex()[:16]},
		{"post", "x", "--to", "nonsense"},
		{"remember", "-t", "learning", "x", "--public", "--to", idB.PubHex()},
	} {
		if _, err := a.try(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		} else if ue := new(usageError); !errors.As(err, &ue) {
			t.Errorf("%v: %v is not a usage error", bad, err)
		}
	}
}

// TestRecallSealed: recall finds encrypted structured memories by type and
// tag for their recipients only.
func TestRecallSealed(t *testing.T) {
	a, b, c := newAgent(t, phraseA), newAgent(t, phraseB), newAgent(t, phraseC)
	shareRepo(t, a, b)
	shareRepo(t, a, c)
	a.run("remember", "-t", "learning", "sealed lesson", "--tags", "x")
	a.run("remember", "-t", "learning", "shared lesson", "--tags", "x", "--to", b.identity().OnionAddress())
	a.run("remember", "-t", "learning", "public lesson", "--tags", "x", "--public")
	a.run("remember", "-t", "observation", "other type", "--tags", "x")
	type row struct {
		Memory    memory.Memory `json:"memory"`
		Encrypted bool          `json:"encrypted"`
		Readable  bool          `json:"readable"`
	}
	tests := []struct {
		who  cli
		want []string
	}{
		{a, []string{"sealed lesson true", "shared lesson true", "public lesson false"}},
		{b, []string{"shared lesson true", "public lesson false"}},
		{c, []string{"public lesson false"}},
	}
	for i, tt := range tests {
		var rows []row
		tt.who.json(&rows, "recall", "--all", "-t", "learning", "--tag", "x")
		var got []string
		for _, r := range rows {
			if !r.Readable {
				t.Errorf("agent %d: unreadable row listed", i)
			}
			got = append(got, r.Memory.Memory.Text()+" "+strconv.FormatBool(r.Encrypted))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("agent %d recalls %q, want %q", i, got, tt.want)
		}
	}
	if h := a.run("recall", "-t", "learning", "--tag", "x"); !strings.Contains(h, "sealed lesson [x]") {
		t.Errorf("human recall:\n%s", h)
	}
}

// TestPlainMessageStillReads: a message stored in clear before encryption
// existed shows valid, readable and not encrypted, and recall finds it.
func TestPlainMessageStillReads(t *testing.T) {
	a := newAgent(t, phraseA)
	st, err := memory.Open(filepath.Join(a.dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := memory.NewMemory("learning", "old lesson", []string{"legacy"}, nil)
	js, _ := mem.JSON()
	ctx := context.Background()
	old1, err := st.Post(ctx, a.identity().Private, "written before seal")
	if err != nil {
		t.Fatal(err)
	}
	old2, err := st.Post(ctx, a.identity().Private, js)
	if err != nil {
		t.Fatal(err)
	}
	rows := a.show()
	for _, m := range []memory.Message{old1, old2} {
		r := rows[m.ID()]
		if !r.Valid || r.Encrypted || !r.Readable || r.Content != m.Content || r.Sealed != "" {
			t.Errorf("old message shows as %+v", r)
		}
	}
	if h := a.run("show"); !strings.Contains(h, "[valid] ") || !strings.Contains(h, ": written before seal") {
		t.Errorf("human show:\n%s", h)
	}
	if r := a.run("recall", "--tag", "legacy"); !strings.Contains(r, "old lesson") {
		t.Errorf("recall misses the old memory:\n%s", r)
	}
}

func TestAddressAgeRecipient(t *testing.T) {
	a := newAgent(t, phraseA)
	var res addressResult
	a.json(&res, "address")
	want, err := seal.RecipientString(a.identity().Public)
	if err != nil || res.AgeRecipient != want || !strings.HasPrefix(want, "age1") {
		t.Fatalf("age_recipient %q, want %q (%v)", res.AgeRecipient, want, err)
	}
	if h := a.run("address"); !strings.Contains(h, "age recipient: "+want) {
		t.Errorf("human address:\n%s", h)
	}
}

func TestKeyExport(t *testing.T) {
	a := newAgent(t, phraseA)
	want, err := seal.IdentityString(a.identity().Private)
	if err != nil {
		t.Fatal(err)
	}
	if out := a.run("key", "export", "--age"); out != want+"\n" {
		t.Errorf("key export --age printed %q", out)
	}
	var res keyExportResult
	a.json(&res, "key", "export", "--age", "--yes")
	if res.AgeIdentity != want {
		t.Errorf("--json: %+v", res)
	}
	if _, err := a.try("key", "export"); err == nil {
		t.Error("key export without a format accepted")
	}
	if isTTY(&bytes.Buffer{}) {
		t.Error("isTTY")
	}
	// On a real terminal the secret needs --yes.
	if tty := openPTY(t); tty != nil {
		var errb bytes.Buffer
		*g = globals{stdout: tty, stderr: &errb, stdin: strings.NewReader("")}
		root := newRootCmd()
		root.SetArgs([]string{"--config-dir", a.dir, "key", "export", "--age"})
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "terminal") {
			t.Errorf("key export --age on a terminal: %v", err)
		}
		*g = globals{stdout: tty, stderr: &errb, stdin: strings.NewReader("")}
		root = newRootCmd()
		root.SetArgs([]string{"--config-dir", a.dir, "key", "export", "--age", "--yes"})
		if err := root.Execute(); err != nil {
			t.Errorf("key export --age --yes on a terminal: %v", err)
		}
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if isTTY(devnull) {
		t.Error("/dev/null taken for a terminal: key export > /dev/null would be refused")
	}
}

// needAge returns the path of the age tool: a failure under CI=true (CI
// installs it, scripts/deps.sh), a skip elsewhere.
func needAge(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("age")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("age is not on PATH (scripts/deps.sh installs it): %v", err)
		}
		t.Skipf("age is not on PATH: %v", err)
	}
	return p
}

// TestAgeInterop: the real age tool decrypts a memory with the identity
// from `key export --age`, and a message age encrypted to `address`'s
// age_recipient is read by the agent.
func TestAgeInterop(t *testing.T) {
	agePath := needAge(t)
	a := newAgent(t, phraseA)

	// (a) mmogit → age.
	text := "read me with age " + randHex(t)
	var posted showRow
	a.json(&posted, "post", text)
	bin, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(posted.Sealed, seal.Prefix))
	if err != nil || !seal.IsSealed(posted.Sealed) {
		t.Fatalf("sealed %q: %v", posted.Sealed, err)
	}
	idFile := filepath.Join(t.TempDir(), "id.txt")
	if err := os.WriteFile(idFile, []byte(a.run("key", "export", "--age", "--yes")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agePath, "-d", "-i", idFile)
	cmd.Stdin = bytes.NewReader(bin)
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != text {
		t.Fatalf("age -d: %q, %v", out, err)
	}
	// Another identity's key does not open it.
	other := newAgent(t, phraseB)
	otherID := filepath.Join(t.TempDir(), "other.txt")
	os.WriteFile(otherID, []byte(other.run("key", "export", "--age")), 0o600)
	cmd = exec.Command(agePath, "-d", "-i", otherID)
	cmd.Stdin = bytes.NewReader(bin)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("age decrypted with the wrong identity: %q", out)
	}

	// (b) age → mmogit.
	var addr addressResult
	a.json(&addr, "address")
	text = "written by age " + randHex(t)
	cmd = exec.Command(agePath, "-r", addr.AgeRecipient)
	cmd.Stdin = strings.NewReader(text)
	ct, err := cmd.Output()
	if err != nil {
		t.Fatalf("age -r: %v", err)
	}
	content := seal.Prefix + base64.StdEncoding.EncodeToString(ct)
	// Signed by a third key, stored like a synced message.
	signer := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	m := memory.Sign(signer, content, time.Now())
	st, err := memory.Open(filepath.Join(a.dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := st.Add(context.Background(), []memory.Message{m}); err != nil || res.Added != 1 {
		t.Fatalf("add: %+v %v", res, err)
	}
	got := a.show()[m.ID()]
	if !got.Valid || !got.Encrypted || !got.Readable || got.Content != text || got.Sealed != content {
		t.Errorf("age-encrypted message shows as %+v", got)
	}
}

// TestAtRest: after a default post the plaintext is nowhere in the
// repository, inflated, nor in any file around it. The same scan finds a
// --public post, which shows it can see what it looks for.
func TestAtRest(t *testing.T) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Skipf("git not on PATH: %v", err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	a := newAgent(t, phraseA)
	repo := filepath.Join(a.dir, "messages")
	canary := "canary-" + randHex(t)
	a.run("post", canary)
	a.run("remember", "-t", "learning", canary+"-memory", "--tags", canary+"-tag")
	scan := func() []string {
		var hits []string
		// Every file, raw: the config dir (seed, index, temp files) and
		// the temp dir.
		for _, root := range []string{a.dir, tmp} {
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(canary)) {
					hits = append(hits, "raw "+p)
				}
				// Loose objects, inflated.
				if rel, _ := filepath.Rel(filepath.Join(repo, ".git", "objects"), p); !strings.HasPrefix(rel, "..") && len(filepath.Base(filepath.Dir(p))) == 2 {
					f, err := os.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					z, err := zlib.NewReader(f)
					if err != nil {
						hits = append(hits, "not zlib "+p)
						return nil
					}
					if b, err := io.ReadAll(z); err != nil {
						hits = append(hits, "bad zlib "+p)
					} else if bytes.Contains(b, []byte(canary)) {
						hits = append(hits, "loose "+rel)
					}
				}
				return nil
			})
		}
		// Every object, loose or packed, as git itself reads it.
		cmd := exec.Command(gitPath, "-C", repo, "cat-file", "--batch-all-objects", "--batch")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git cat-file: %v", err)
		}
		r := bufio.NewReader(bytes.NewReader(out))
		objects := 0
		for {
			hdr, err := r.ReadString('\n')
			if err == io.EOF {
				break
			}
			f := strings.Fields(hdr)
			if err != nil || len(f) != 3 {
				t.Fatalf("cat-file header %q: %v", hdr, err)
			}
			n, _ := strconv.Atoi(f[2])
			body := make([]byte, n+1)
			if _, err := io.ReadFull(r, body); err != nil {
				t.Fatal(err)
			}
			objects++
			if bytes.Contains(body, []byte(canary)) {
				hits = append(hits, "object "+f[0]+" "+f[1])
			}
		}
		if objects < 6 { // 2 blobs, 2 trees, 2 commits at least
			t.Fatalf("cat-file listed only %d objects", objects)
		}
		return hits
	}
	if hits := scan(); len(hits) > 0 {
		t.Errorf("plaintext found at rest: %v", hits)
	}
	// Packed objects too.
	if out, err := exec.Command(gitPath, "-C", repo, "repack", "-a", "-d", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git repack: %v %s", err, out)
	}
	if hits := scan(); len(hits) > 0 {
		t.Errorf("plaintext found after repack: %v", hits)
	}
	if n := a.run("show"); !strings.Contains(n, canary) {
		t.Errorf("the author cannot read its canary:\n%s", n)
	}

	// The scan works: a public post is found, packed and loose.
	a.run("post", "--public", canary)
	hits := scan()
	if !slices.ContainsFunc(hits, func(h string) bool { return strings.HasPrefix(h, "loose ") }) ||
		!slices.ContainsFunc(hits, func(h string) bool { return strings.HasPrefix(h, "object ") }) {
		t.Errorf("public post not detected loose and by cat-file: %v", hits)
	}
	exec.Command(gitPath, "-C", repo, "repack", "-a", "-d", "-q").Run()
	if hits := scan(); !slices.ContainsFunc(hits, func(h string) bool { return strings.HasPrefix(h, "object ") }) {
		t.Errorf("public post not detected once packed: %v", hits)
	}
}

func randHex(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
