package refcompat

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/refenvelope"
	"github.com/mmogit/mmogit/internal/syncproto"
)

// fixtureStore clones the reference-written repository into a fresh
// directory and opens it.
func fixtureStore(t *testing.T) *memory.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "messages")
	if out, err := exec.Command("git", "clone", "-q", "--mirror", "testdata/reference-repo.bundle", dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	st, err := memory.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func fixtureKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	id, err := identity.FromPhrase(FixturePhrase)
	if err != nil {
		t.Fatal(err)
	}
	if id.PubHex() != FixtureAuthor {
		t.Fatalf("phrase gives %s, the reference gave %s", id.PubHex(), FixtureAuthor)
	}
	return id.Private
}

// The fixture holds what the reference wrote: `post --public`, `remember
// --public -t observation`, and by default (encrypted) `post` and
// `remember -t learning`. Its -encrypted branch also carries copies of
// the two plain files (its post_encrypted commits the index as it is).
var (
	plainContents     = []string{"reference public post", "reference public observation"}
	encryptedContents = []string{"reference encrypted post", "reference encrypted learning"}
)

func TestFixtureAuthorReadsAll(t *testing.T) {
	ctx := context.Background()
	st := fixtureStore(t)
	es, err := st.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es = memory.OpenEnvelopes(es, fixtureKey(t))
	got := map[string]memory.Entry{}
	for _, e := range es {
		if !e.Valid {
			t.Fatalf("%s:%s not valid for its author: %v", e.Branch, e.Path, e.Err)
		}
		got[e.Message.Content] = e
	}
	for _, c := range plainContents {
		if e := findContent(got, c); e == nil || e.Envelope != nil {
			t.Fatalf("plain %q: %+v", c, e)
		}
	}
	for _, c := range encryptedContents {
		e := findContent(got, c)
		if e == nil || e.Envelope == nil || !e.Opened || e.Message.Author != FixtureAuthor {
			t.Fatalf("encrypted %q not opened: %+v", c, e)
		}
	}
	rs, err := st.Recall(ctx, memory.Filter{Identity: fixtureKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	types := map[memory.Type]bool{}
	for _, r := range rs {
		types[r.Memory.Memory.Type] = true
	}
	if len(rs) != 2 || !types["Observation"] || !types["Learning"] {
		t.Fatalf("Recall = %d memories %v, want the public observation and the encrypted learning once each", len(rs), types)
	}
}

func findContent(m map[string]memory.Entry, sub string) *memory.Entry {
	for c, e := range m {
		if strings.Contains(c, sub) {
			return &e
		}
	}
	return nil
}

// TestFixtureOtherIdentity: another identity sees the envelopes as
// encrypted and unreadable, never as forgeries.
func TestFixtureOtherIdentity(t *testing.T) {
	ctx := context.Background()
	st := fixtureStore(t)
	other := ed25519.NewKeyFromSeed(make([]byte, 32))
	es, err := st.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	envs := 0
	for _, e := range memory.OpenEnvelopes(es, other) {
		switch {
		case e.Envelope != nil:
			envs++
			if e.Opened || e.Valid || !errors.Is(e.Err, memory.ErrEnvelope) || e.ID != "" {
				t.Fatalf("envelope %s for another identity: opened %v valid %v err %v", e.Path, e.Opened, e.Valid, e.Err)
			}
		case !e.Valid:
			t.Fatalf("%s:%s INVALID: %v", e.Branch, e.Path, e.Err)
		}
	}
	if envs != 2 {
		t.Fatalf("%d envelopes, want 2", envs)
	}
	rs, err := st.Recall(ctx, memory.Filter{Identity: other})
	if err != nil || len(rs) != 1 {
		t.Fatalf("Recall by another identity = %d, %v; want only the public observation", len(rs), err)
	}
}

// TestFixtureEnvelopeFile opens the reference's envelope byte for byte.
func TestFixtureEnvelopeFile(t *testing.T) {
	data, err := os.ReadFile("testdata/reference-envelope.json")
	if err != nil {
		t.Fatal(err)
	}
	env, err := refenvelope.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := env.Open(refenvelope.Key(fixtureKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	es := memory.OpenEnvelopes([]memory.Entry{{Envelope: env, Err: memory.ErrEnvelope}}, fixtureKey(t))
	if !es[0].Valid || es[0].Message.Content != "reference encrypted post" {
		t.Fatalf("inner message %s: %+v", pt, es[0])
	}
	if _, err := env.Open(refenvelope.Key(ed25519.NewKeyFromSeed(make([]byte, 32)))); !errors.Is(err, refenvelope.ErrNotOurs) {
		t.Fatalf("another key: %v", err)
	}
}

// TestEnvelopesNotSynced: the sync protocol offers only validly signed
// messages. An envelope has no outer signature, so the receiver could not
// tell the author's envelope from anyone's junk: it never leaves the
// repository through sync, not even to the author's own devices (which
// hold the same seed but get envelopes only by copying the git repository,
// as the reference does). Here the author's own second device syncs with
// the fixture and receives the two plain messages, not the envelopes.
func TestEnvelopesNotSynced(t *testing.T) {
	ctx := context.Background()
	src := fixtureStore(t)
	dst, err := memory.Open(filepath.Join(t.TempDir(), "device2"))
	if err != nil {
		t.Fatal(err)
	}
	key := fixtureKey(t)
	a, b := net.Pipe()
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer a.Close()
		_, errA = syncproto.Sync(ctx, a, src, syncproto.Options{Identity: key})
	}()
	go func() {
		defer wg.Done()
		defer b.Close()
		_, errB = syncproto.Sync(ctx, b, dst, syncproto.Options{Identity: key})
	}()
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatalf("sync: %v / %v", errA, errB)
	}
	es, err := dst.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range memory.OpenEnvelopes(es, key) {
		if e.Envelope != nil {
			t.Fatalf("envelope %s synced", e.Path)
		}
		got = append(got, e.Message.Content)
	}
	if len(got) != 2 {
		t.Fatalf("device 2 holds %d messages, want the 2 plain ones: %q", len(got), got)
	}
}
