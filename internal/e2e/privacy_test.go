package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/trust"
)

// showRow is one row of `mmogit --json show`.
type showRow struct {
	memory.Message
	ID        string `json:"id"`
	Valid     bool   `json:"valid"`
	Encrypted bool   `json:"encrypted"`
	Readable  bool   `json:"readable"`
}

func showAll(t *testing.T, a *cluster.Agent) map[string]showRow {
	t.Helper()
	out, err := run(t, a, "--json", "show", "--all")
	if err != nil {
		t.Fatal(err)
	}
	var rows []showRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("show output %q: %v", out, err)
	}
	m := map[string]showRow{}
	for _, r := range rows {
		m[r.ID] = r
	}
	return m
}

// postCLI posts through the CLI (encrypted unless args say --public) and
// returns the stored message's ID.
func postCLI(t *testing.T, a *cluster.Agent, args ...string) string {
	t.Helper()
	out, err := run(t, a, append([]string{"--json", "post"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.ID == "" {
		t.Fatalf("post output %q: %v", out, err)
	}
	return r.ID
}

func syncJSON(t *testing.T, from *cluster.Agent, to string) localapi.SyncResult {
	t.Helper()
	out, err := run(t, from, "--json", "sync", to)
	if err != nil {
		t.Fatal(err)
	}
	r := parseSyncOne(t, out)
	if r.Error != "" {
		t.Fatalf("%s → %s sync failed: %s (%s)", from.Name, to, r.Error, r.ErrorKind)
	}
	return r
}

// heldIDs is the set of valid message IDs in a's repository.
func heldIDs(t *testing.T, a *cluster.Agent) map[string]memory.Message {
	t.Helper()
	st, err := memory.Open(filepath.Join(a.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]memory.Message{}
	for _, e := range all {
		if e.Valid {
			out[e.ID] = e.Message
		}
	}
	return out
}

// objectsContain reports whether any object of a's git repository,
// inflated by the real git, contains needle.
func objectsContain(t *testing.T, a *cluster.Agent, needle string) bool {
	t.Helper()
	cmd := exec.Command("git", "-C", filepath.Join(a.Dir, "messages"), "cat-file", "--batch-all-objects", "--batch")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), needle) {
			found = true
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return found
}

func randomTag(t *testing.T) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestPrivateByDefault runs four tor-only agents on the private Tor
// network: A holds its own public and private memories and a third
// party's; B may read A's; C has no role but is the recipient of one of A's
// posts; S is a stranger that finds A through discovery. It checks what each
// receives and may store, A's write quota, and what stays at rest.
func TestPrivateByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("four agents on the private Tor network: slow")
	}
	const quota = 20
	first := startAgents(t, agentSpec{name: "A", services: []string{"memory_sync"}, stranger: true,
		configure: func(c *config.Config) { c.Sync.QuotaMessages = quota }})
	A := first[0]
	boot := []string{A.ID.OnionAddress()}
	rest := startAgents(t,
		agentSpec{name: "B", bootstrap: boot, stranger: true},
		agentSpec{name: "C", bootstrap: boot, stranger: true},
		agentSpec{name: "S", services: []string{"memory_sync"}, bootstrap: boot, stranger: true},
	)
	B, C, S := rest[0], rest[1], rest[2]

	tag := randomTag(t)
	canary := "canary-private-" + tag
	pub1 := postCLI(t, A, "--public", "a public post "+tag)
	pub2 := postCLI(t, A, "--public", "another public post "+tag)
	private := postCLI(t, A, canary)
	forC := postCLI(t, A, "--to", C.ID.OnionAddress(), "for C only "+tag)
	// Two messages A holds from a third party (as a relay would).
	third := testIdentity("third party " + tag)
	stA, err := memory.Open(filepath.Join(A.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	thirdMsgs := []memory.Message{
		memory.Sign(third.Private, "third party, plain "+tag, time.Now()),
		memory.Sign(third.Private, "third party, second "+tag, time.Now().Add(time.Millisecond)),
	}
	if _, err := stA.Add(context.Background(), thirdMsgs); err != nil {
		t.Fatal(err)
	}
	// 50 messages signed by 50 fresh keys that S will offer A.
	stS, err := memory.Open(filepath.Join(S.Dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	var pushed []memory.Message
	for i := range 50 {
		k := testIdentity(fmt.Sprintf("fresh key %d %s", i, tag))
		pushed = append(pushed, memory.Sign(k.Private, fmt.Sprintf("pushed %d %s", i, tag), time.Now()))
	}
	if _, err := stS.Add(context.Background(), pushed); err != nil {
		t.Fatal(err)
	}
	aHeld := heldIDs(t, A)
	if len(aHeld) != 6 {
		t.Fatalf("A holds %d messages before any sync, want 6", len(aHeld))
	}

	t.Run("a stranger receives only public posts and stores nothing", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if _, err := pollDiscover(ctx, t, S, "memory_sync", func(ads []localapi.Advertisement) string {
			for _, ad := range ads {
				if ad.OnionAddress == A.ID.OnionAddress() {
					return ""
				}
			}
			return "A not found yet"
		}); err != nil {
			t.Fatal(err)
		}
		// S keeps what A sends it (A may write, in S's own list) and
		// offers A everything it holds (A may read).
		if _, err := run(t, S, "trust", "add", A.ID.OnionAddress(), "--read", "--write"); err != nil {
			t.Fatal(err)
		}
		r := syncJSON(t, S, A.ID.OnionAddress())
		if r.Received != 2 {
			t.Errorf("stranger received %d messages, want A's 2 public ones: %+v", r.Received, r)
		}
		got := heldIDs(t, S)
		for id, m := range got {
			if m.Author == S.ID.PubHex() || strings.HasPrefix(m.Content, "pushed ") {
				continue
			}
			if id != pub1 && id != pub2 {
				t.Errorf("stranger holds %.16s… by %.8s: %.60q", id, m.Author, m.Content)
			}
		}
		if _, ok := got[pub1]; !ok {
			t.Errorf("stranger lacks A's public post")
		}
		if objectsContain(t, S, "third party, plain "+tag) {
			t.Errorf("a third party's memory reached the stranger's repository")
		}
		// A pulling from S by name: S's 50 are refused, counted, not stored.
		r = syncJSON(t, A, S.ID.OnionAddress())
		if r.Refused != 50 || r.Received != 0 {
			t.Errorf("A's sync with the stranger: received %d, refused %d; want 0 and 50", r.Received, r.Refused)
		}
		if n := len(heldIDs(t, A)); n != 6 {
			t.Errorf("A holds %d messages after the stranger's, want still 6", n)
		}
		b, err := os.ReadFile(filepath.Join(A.Dir, "peers.json"))
		if err == nil && strings.Contains(string(b), S.ID.PeerID().String()) {
			t.Errorf("the stranger is in A's peers.json:\n%s", b)
		}
		if !strings.Contains(A.Tail(200), "refused=50") {
			t.Errorf("A's log does not report the stranger's 50 refused messages:\n%s", A.Tail(30))
		}
	})

	t.Run("a read peer holds everything and reads only its own", func(t *testing.T) {
		if _, err := run(t, A, "trust", "add", B.ID.OnionAddress(), "--read", "--alias", "bee"); err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, B, "trust", "add", A.ID.OnionAddress(), "--write"); err != nil {
			t.Fatal(err)
		}
		r := syncJSON(t, B, A.ID.OnionAddress())
		if r.Received != 6 {
			t.Errorf("read peer received %d, want all 6 A holds", r.Received)
		}
		rows := showAll(t, B)
		for id, want := range map[string]bool{pub1: true, pub2: true, private: false, forC: false, thirdMsgs[0].ID(): true} {
			row, ok := rows[id]
			if !ok {
				t.Errorf("B lacks %.16s…", id)
				continue
			}
			if !row.Valid || row.Readable != want {
				t.Errorf("B sees %.16s… valid=%v readable=%v, want readable=%v", id, row.Valid, row.Readable, want)
			}
		}
		// B relays ciphertext; the private canary is not in its objects.
		if objectsContain(t, B, canary) {
			t.Errorf("the private canary is in B's git objects")
		}
	})

	t.Run("a recipient without a role receives what is addressed to it", func(t *testing.T) {
		if _, err := run(t, C, "trust", "add", A.ID.OnionAddress(), "--write"); err != nil {
			t.Fatal(err)
		}
		r := syncJSON(t, C, A.ID.OnionAddress())
		if r.Received != 3 {
			t.Errorf("recipient received %d, want A's 2 public posts and the one for C", r.Received)
		}
		rows := showAll(t, C)
		if row, ok := rows[forC]; !ok || !row.Readable || !strings.Contains(row.Content, "for C only") {
			t.Errorf("C cannot read the post addressed to it: %+v", row)
		}
		if _, ok := rows[private]; ok {
			t.Errorf("C holds A's private memory")
		}
	})

	t.Run("a write peer is held to its quota", func(t *testing.T) {
		if _, err := trust.Set(A.Dir, S.ID.Public, false, true, "", "test"); err != nil {
			t.Fatal(err)
		}
		r := syncJSON(t, A, S.ID.OnionAddress())
		if r.Received != quota || r.Refused != 50-quota {
			t.Errorf("write peer over quota: received %d, refused %d; want %d and %d", r.Received, r.Refused, quota, 50-quota)
		}
		held := heldIDs(t, A)
		for id := range aHeld {
			if _, ok := held[id]; !ok {
				t.Errorf("A lost %.16s…", id)
			}
		}
		if len(held) != 6+quota {
			t.Errorf("A holds %d, want %d", len(held), 6+quota)
		}
		gitFsck(t, A)
		// Another sync the same day stores nothing more.
		r = syncJSON(t, A, S.ID.OnionAddress())
		if r.Received != 0 || r.Refused != 50-quota {
			t.Errorf("second sync over quota: received %d, refused %d", r.Received, r.Refused)
		}
	})

	t.Run("at rest", func(t *testing.T) {
		if objectsContain(t, A, canary) {
			t.Errorf("the private canary is in A's git objects")
		}
		if !objectsContain(t, A, "a public post "+tag) {
			t.Errorf("the check cannot see content: the public post is not found either")
		}
	})

	t.Run("invite round trip over onion", func(t *testing.T) {
		line, err := run(t, B, "invite", "--read")
		if err != nil {
			t.Fatal(err)
		}
		line = strings.TrimSpace(line)
		out, err := run(t, C, "--json", "join", line)
		if err != nil {
			t.Fatal(err)
		}
		var jr localapi.JoinResult
		if err := json.Unmarshal([]byte(out), &jr); err != nil {
			t.Fatal(err)
		}
		if !jr.GrantedRead || jr.GrantedWrite || !jr.TrustedRead || !jr.TrustedWrite || jr.OnionAddress != B.ID.OnionAddress() {
			t.Errorf("join result %+v: want granted read only, trusted read+write, B's address", jr)
		}
		bl, _ := trust.Load(B.Dir)
		if e, ok := bl.Lookup(C.ID.Public); !ok || !e.Read || e.Write || e.Via != "invite" {
			t.Errorf("B's entry for C: %+v, %v; want read only, via invite", e, ok)
		}
		cl, _ := trust.Load(C.Dir)
		if e, ok := cl.Lookup(B.ID.Public); !ok || !e.Read || !e.Write {
			t.Errorf("C's entry for B: %+v, %v; want read+write", e, ok)
		}
		// The second use, by anyone, is refused and changes nothing.
		out, err = run(t, S, "--json", "join", line)
		if err == nil || !strings.Contains(out, `"invite_used"`) {
			t.Errorf("second use: %v, want invite_used", err)
		}
		expired, err := run(t, B, "invite", "--expires", "1s")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		out, err = run(t, S, "--json", "join", strings.TrimSpace(expired))
		if err == nil || !strings.Contains(out, `"invite_expired"`) {
			t.Errorf("expired invite: %v, want invite_expired", err)
		}
		bl, _ = trust.Load(B.Dir)
		if _, ok := bl.Lookup(S.ID.Public); ok {
			t.Errorf("a refused joiner is in B's trust list")
		}
		if sl, _ := trust.Load(S.Dir); func() bool { _, ok := sl.Lookup(B.ID.Public); return ok }() {
			t.Errorf("a refused join changed the joiner's trust list")
		}
	})
}
