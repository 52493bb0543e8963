package mcpserver_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/cluster"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/testnet"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// bin is the mmogit binary built for these tests: the server runs as a
// subprocess on real stdio, as an MCP host runs it.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mmogit-mcp-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "mmogit")
	build := exec.Command("go", "build", "-o", bin, "github.com/mmogit/mmogit/cmd/mmogit")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mmogit:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	testnet.CloseShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newIdentity makes a config dir with a fresh identity.
func newIdentity(t *testing.T) (string, *identity.Identity) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	out, err := exec.Command(bin, "--config-dir", dir, "--json", "init", "--no-verify").CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	id, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id
}

// syncBuffer is a bytes.Buffer safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs `mmogit mcp` for dir and connects the SDK's client to it.
func start(t *testing.T, dir string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(bin, "--config-dir", dir, "-vv", "mcp")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}, nil)
	if err != nil {
		t.Fatalf("connect: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Cleanup(func() {
		cs.Close()
		if t.Failed() {
			t.Logf("server stderr:\n%s", stderr.String())
		}
	})
	return cs
}

// call calls a tool; a protocol error fails the test.
func call(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// decode turns a result's structured content into v, failing on isError.
func decode(t *testing.T, name string, res *mcp.CallToolResult, v any) {
	t.Helper()
	if res.IsError {
		t.Fatalf("%s: isError: %s", name, text(res))
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: structured content %s: %v", name, b, err)
	}
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

type messageOut struct {
	memory.Message
	ID         string   `json:"id"`
	Valid      bool     `json:"valid"`
	Encrypted  bool     `json:"encrypted"`
	Readable   bool     `json:"readable"`
	Sealed     string   `json:"sealed"`
	Recipients []string `json:"recipients"`
}

type recalled struct {
	MessageID string        `json:"message_id"`
	Author    string        `json:"author"`
	Memory    memory.Memory `json:"memory"`
	Encrypted bool          `json:"encrypted"`
	Readable  bool          `json:"readable"`
}

type errorOut struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

func TestInitializeAndToolsList(t *testing.T) {
	dir, _ := newIdentity(t)
	cs := start(t, dir)
	if info := cs.InitializeResult().ServerInfo; info.Name != "mmogit" {
		t.Errorf("server name %q", info.Name)
	}
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"advertise", "connect", "discover", "invite", "join", "post", "recall", "remember", "show",
		"status", "sync", "trust_add", "trust_list", "trust_remove", "whoami"}
	var got []string
	for _, tool := range res.Tools {
		got = append(got, tool.Name)
		if tool.Description == "" {
			t.Errorf("%s has no description", tool.Name)
		}
		schema, _ := json.Marshal(tool.InputSchema)
		if !strings.Contains(string(schema), `"type":"object"`) {
			t.Errorf("%s input schema %s", tool.Name, schema)
		}
		if tool.OutputSchema == nil {
			t.Errorf("%s has no output schema", tool.Name)
		}
		if a := tool.Annotations; a == nil || a.ReadOnlyHint != slices.Contains([]string{"recall", "show", "whoami", "trust_list", "status", "discover"}, tool.Name) {
			t.Errorf("%s annotations %+v", tool.Name, a)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("tools %v, want %v", got, want)
	}
}

func TestRememberRecallShow(t *testing.T) {
	dir, id := newIdentity(t)
	otherDir, other := newIdentity(t)
	cs := start(t, dir)

	var who struct {
		Pubkey       string `json:"pubkey"`
		OnionAddress string `json:"onion_address"`
		PeerID       string `json:"peer_id"`
		AgeRecipient string `json:"age_recipient"`
	}
	decode(t, "whoami", call(t, cs, "whoami", map[string]any{}), &who)
	if who.Pubkey != id.PubHex() || who.OnionAddress != id.OnionAddress() || who.PeerID != id.PeerID().String() || !strings.HasPrefix(who.AgeRecipient, "age1") {
		t.Errorf("whoami %+v", who)
	}

	const lesson = "go vet catches printf bugs"
	var mem messageOut
	decode(t, "remember", call(t, cs, "remember", map[string]any{"type": "learning", "text": lesson, "tags": []string{"go", "tools"}}), &mem)
	if !mem.Encrypted || !mem.Readable || !strings.HasPrefix(mem.Sealed, seal.Prefix) || strings.Contains(mem.Sealed, lesson) {
		t.Errorf("remember is not encrypted by default: %+v", mem)
	}
	if !strings.Contains(mem.Content, lesson) || !slices.Equal(mem.Recipients, []string{id.PubHex()}) {
		t.Errorf("remember content %q recipients %v", mem.Content, mem.Recipients)
	}

	// To another agent: it can decrypt, and the recipient is recorded for
	// the agent to share the message with it.
	var shared messageOut
	decode(t, "remember", call(t, cs, "remember", map[string]any{"text": "shared secret", "to": []string{other.OnionAddress()}}), &shared)
	if len(shared.Recipients) != 2 || shared.Recipients[1] != other.PubHex() {
		t.Errorf("recipients %v", shared.Recipients)
	}
	if pt, err := seal.Open(shared.Sealed, other.Private); err != nil || !strings.Contains(pt, "shared secret") {
		t.Errorf("the other agent cannot open it: %q, %v", pt, err)
	}
	if ix, err := seal.LoadIndex(dir); err != nil || !slices.Equal(ix.Recipients(shared.ID), []string{other.PubHex()}) {
		t.Errorf("recipients index %v, %v", ix, err)
	}
	_ = otherDir

	var pub messageOut
	decode(t, "post", call(t, cs, "post", map[string]any{"text": "hello world", "public": true}), &pub)
	if pub.Encrypted || pub.Content != "hello world" {
		t.Errorf("public post %+v", pub)
	}

	recall := func(args map[string]any) []recalled {
		t.Helper()
		var out struct {
			Memories []recalled `json:"memories"`
		}
		decode(t, "recall", call(t, cs, "recall", args), &out)
		return out.Memories
	}
	if rs := recall(map[string]any{"tag": "go"}); len(rs) != 1 || rs[0].Memory.Memory.Lesson != lesson || !rs[0].Encrypted || !rs[0].Readable || rs[0].MessageID != mem.ID {
		t.Errorf("recall tag go: %+v", rs)
	}
	if rs := recall(map[string]any{"type": "learning"}); len(rs) != 1 {
		t.Errorf("recall type learning: %+v", rs)
	}
	if rs := recall(map[string]any{"tag": "nope"}); len(rs) != 0 {
		t.Errorf("recall tag nope: %+v", rs)
	}
	if rs := recall(map[string]any{}); len(rs) != 2 {
		t.Errorf("recall everything: %d memories, want 2", len(rs))
	}
	if rs := recall(map[string]any{"limit": 1}); len(rs) != 1 || rs[0].MessageID != shared.ID {
		t.Errorf("recall limit 1 is not the newest: %+v", rs)
	}

	var show struct {
		Messages []messageOut `json:"messages"`
		Hidden   int          `json:"hidden"`
	}
	decode(t, "show", call(t, cs, "show", map[string]any{}), &show)
	if len(show.Messages) != 3 {
		t.Fatalf("show: %d messages, want 3", len(show.Messages))
	}
	for i, wantEnc := range []bool{true, true, false} {
		m := show.Messages[i]
		if !m.Valid || !m.Readable || m.Encrypted != wantEnc {
			t.Errorf("show[%d] %+v", i, m)
		}
	}
	if show.Messages[0].Content != mem.Content {
		t.Errorf("show does not decrypt: %q", show.Messages[0].Content)
	}
	decode(t, "show", call(t, cs, "show", map[string]any{"limit": 1}), &show)
	if len(show.Messages) != 1 || show.Messages[0].ID != pub.ID {
		t.Errorf("show limit 1: %+v", show.Messages)
	}
}

// TestShowMarksUnreadable stores a message sealed to another agent only:
// show lists it as encrypted and not readable, with the ciphertext.
func TestShowMarksUnreadable(t *testing.T) {
	dir, _ := newIdentity(t)
	_, other := newIdentity(t)
	st, err := memory.Open(filepath.Join(dir, "messages"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := seal.Seal("for the other only", []ed25519.PublicKey{other.Public})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Add(context.Background(), []memory.Message{memory.Sign(other.Private, sealed, time.Now())}); err != nil {
		t.Fatal(err)
	}
	cs := start(t, dir)
	var show struct {
		Messages []messageOut `json:"messages"`
		Hidden   int          `json:"hidden"`
	}
	decode(t, "show", call(t, cs, "show", map[string]any{}), &show)
	if len(show.Messages) != 0 || show.Hidden != 1 {
		t.Errorf("an untrusted author is listed by default: %+v", show)
	}
	decode(t, "show", call(t, cs, "show", map[string]any{"all": true}), &show)
	if len(show.Messages) != 1 {
		t.Fatalf("show all: %+v", show)
	}
	if m := show.Messages[0]; !m.Encrypted || m.Readable || m.Content != sealed || !m.Valid {
		t.Errorf("unreadable message shown as %+v", m)
	}
}

func TestResources(t *testing.T) {
	dir, _ := newIdentity(t)
	cs := start(t, dir)
	var mem messageOut
	decode(t, "remember", call(t, cs, "remember", map[string]any{"text": "resources work", "tags": []string{"mcp"}}), &mem)

	ctx := context.Background()
	list, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	uri := "mmogit://memory/" + mem.ID
	if len(list.Resources) != 1 || list.Resources[0].URI != uri || !strings.Contains(list.Resources[0].Description, "resources work") {
		t.Fatalf("resources %+v", list.Resources)
	}
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
	if err != nil {
		t.Fatal(err)
	}
	var got messageOut
	if len(res.Contents) != 1 || json.Unmarshal([]byte(res.Contents[0].Text), &got) != nil {
		t.Fatalf("read %+v", res.Contents)
	}
	if got.ID != mem.ID || !got.Readable || !got.Encrypted || !strings.Contains(got.Content, "resources work") {
		t.Errorf("read %+v", got)
	}
	for _, bad := range []string{"mmogit://memory/" + strings.Repeat("0", 64), "mmogit://memory/nope"} {
		if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: bad}); err == nil {
			t.Errorf("read %s: no error", bad)
		}
	}
}

// wantError calls a tool and checks it fails with kind and text, quickly.
func wantError(t *testing.T, cs *mcp.ClientSession, name string, args any, kind, contains string) {
	t.Helper()
	began := time.Now()
	res := call(t, cs, name, args)
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("%s took %v", name, d)
	}
	if !res.IsError {
		t.Fatalf("%s(%v) succeeded: %s", name, args, text(res))
	}
	var e errorOut
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &e); err != nil || e.Kind != kind || !strings.Contains(e.Error, contains) || !strings.Contains(text(res), contains) {
		t.Errorf("%s(%v): %s, want kind %q containing %q", name, args, b, kind, contains)
	}
}

func TestToolErrors(t *testing.T) {
	dir, _ := newIdentity(t)
	_, other := newIdentity(t)
	cs := start(t, dir)
	tests := []struct {
		tool     string
		args     map[string]any
		kind     string
		contains string
	}{
		{"remember", map[string]any{}, "usage", "text"},
		{"remember", map[string]any{"text": 5}, "usage", "text"},
		{"remember", map[string]any{"text": ""}, "usage", "empty"},
		{"remember", map[string]any{"text": "x", "type": "bogus"}, "usage", "unknown memory type"},
		{"remember", map[string]any{"text": "x", "confidence": 2}, "usage", "confidence"},
		{"remember", map[string]any{"text": "x", "to": []string{"nobody"}}, "usage", "to:"},
		{"remember", map[string]any{"text": "x", "public": true, "to": []string{other.PubHex()}}, "usage", "contradict"},
		{"remember", map[string]any{"text": "x", "tags": []string{strings.Repeat("t", 300)}}, "usage", "tags"},
		{"post", map[string]any{"text": "x", "unknown": 1}, "usage", "unknown"},
		{"recall", map[string]any{"limit": -1}, "usage", "limit"},
		{"recall", map[string]any{"limit": 100000}, "usage", "limit"},
		{"recall", map[string]any{"type": "bogus"}, "usage", "unknown memory type"},
		{"show", map[string]any{"author": "nobody"}, "usage", "author"},
		{"trust_add", map[string]any{"peer": "zzz"}, "usage", "peer"},
		{"trust_remove", map[string]any{"peer": other.PubHex()}, "usage", "no such peer"},
		{"invite", map[string]any{"expires": "soon"}, "usage", "expires"},
		{"invite", map[string]any{"expires": "-1h"}, "usage", "positive"},
		{"join", map[string]any{"invite": "garbage"}, "usage", "invite"},
		{"discover", map[string]any{"service": ""}, "usage", "service"},
		{"advertise", map[string]any{"services": []string{}}, "usage", "services"},
	}
	for _, tc := range tests {
		t.Run(tc.tool, func(t *testing.T) {
			wantError(t, cs, tc.tool, tc.args, tc.kind, tc.contains)
		})
	}
	// The server is still up.
	decode(t, "whoami", call(t, cs, "whoami", map[string]any{}), &struct{}{})
}

// TestAgentNotRunning: every network tool fails at once with the hint.
func TestAgentNotRunning(t *testing.T) {
	dir, _ := newIdentity(t)
	inviterDir, other := newIdentity(t)
	inviter := start(t, inviterDir)
	var inv struct {
		Invite string `json:"invite"`
		Read   bool   `json:"read"`
		Write  bool   `json:"write"`
	}
	decode(t, "invite", call(t, inviter, "invite", map[string]any{"expires": "1h"}), &inv)
	if inv.Invite == "" || !inv.Read || !inv.Write {
		t.Fatalf("invite %+v", inv)
	}
	cs := start(t, dir)
	tests := []struct {
		tool string
		args map[string]any
	}{
		{"status", map[string]any{}},
		{"discover", map[string]any{"service": "chat"}},
		{"connect", map[string]any{"address": other.OnionAddress()}},
		{"sync", map[string]any{}},
		{"sync", map[string]any{"peer": other.OnionAddress()}},
		{"advertise", map[string]any{"services": []string{"chat"}}},
		{"join", map[string]any{"invite": inv.Invite}},
	}
	for _, tc := range tests {
		t.Run(tc.tool, func(t *testing.T) {
			wantError(t, cs, tc.tool, tc.args, "not_running", "mmogit tor start")
		})
	}
}

func TestTrustTools(t *testing.T) {
	dir, _ := newIdentity(t)
	_, other := newIdentity(t)
	cs := start(t, dir)
	type entry struct {
		Key   string `json:"key"`
		Alias string `json:"alias"`
		Read  bool   `json:"read"`
		Write bool   `json:"write"`
	}
	var e entry
	decode(t, "trust_add", call(t, cs, "trust_add", map[string]any{"peer": other.OnionAddress(), "read": true, "alias": "bob"}), &e)
	if e.Key != other.PubHex() || !e.Read || e.Write || e.Alias != "bob" {
		t.Errorf("trust_add %+v", e)
	}
	var list struct {
		Peers []entry `json:"peers"`
	}
	decode(t, "trust_list", call(t, cs, "trust_list", map[string]any{}), &list)
	if len(list.Peers) != 1 || list.Peers[0].Key != other.PubHex() {
		t.Errorf("trust_list %+v", list)
	}
	decode(t, "trust_remove", call(t, cs, "trust_remove", map[string]any{"peer": "bob"}), &e)
	decode(t, "trust_list", call(t, cs, "trust_list", map[string]any{}), &list)
	if len(list.Peers) != 0 {
		t.Errorf("after trust_remove %+v", list)
	}
}

// TestOversized: an argument over the message limit is refused, a request
// over the frame limit is answered with an error, and the server goes on.
func TestOversized(t *testing.T) {
	dir, _ := newIdentity(t)
	cs := start(t, dir)
	wantError(t, cs, "remember", map[string]any{"text": strings.Repeat("a", memory.MaxContentBytes+1)}, "usage", "limit")
	wantError(t, cs, "post", map[string]any{"text": strings.Repeat("a", memory.MaxContentBytes-100)}, "usage", "limit") // too large once sealed

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "post", Arguments: map[string]any{"text": strings.Repeat("b", 9<<20)}})
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("a 9 MB request: %v", err)
	}
	decode(t, "whoami", call(t, cs, "whoami", map[string]any{}), &struct{}{})
}

// TestMalformedLines writes raw lines: what is not JSON-RPC is dropped
// (answered when it has an id) and the session goes on.
func TestMalformedLines(t *testing.T) {
	dir, _ := newIdentity(t)
	cmd := exec.Command(bin, "--config-dir", dir, "mcp")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`this is not json`,
		`{"id":2,"no":"jsonrpc"}`,
		`[]`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`,
	}
	for _, l := range lines {
		if _, err := io.WriteString(stdin, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 16<<20)
	got := map[string]map[string]any{}
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for len(got) < 3 && sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout is not JSON-RPC: %q", sc.Text())
		}
		got[fmt.Sprint(m["id"])] = m
	}
	if _, ok := got["2"]["error"]; !ok {
		t.Errorf("no error for the request without jsonrpc: %v", got["2"])
	}
	if r, ok := got["3"]["result"].(map[string]any); !ok || r["isError"] == true {
		t.Errorf("whoami after malformed lines: %v\nstderr:\n%s", got["3"], stderr.String())
	}
	if !strings.Contains(stderr.String(), "dropped a malformed request") {
		t.Errorf("nothing logged on stderr:\n%s", stderr.String())
	}
}

// TestNetworkTools drives the network tools against two agents on a
// private Tor network (internal/testnet): status, connect, sync, advertise,
// discover, invite and join. It needs tor and takes a while; skipped under
// -short.
func TestNetworkTools(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a private Tor network")
	}
	tn := testnet.Shared(t)
	root := t.TempDir()
	var agents []*cluster.Agent
	var opts []cluster.AgentOptions
	for _, name := range []string{"alice", "bob"} {
		o := cluster.AgentOptions{Bin: bin, Dir: filepath.Join(root, name), Name: name, Testnet: tn.Info().Dir}
		a, err := cluster.Prepare(o)
		if err != nil {
			t.Fatal(err)
		}
		agents, opts = append(agents, a), append(opts, o)
	}
	if err := cluster.TrustEachOther(agents...); err != nil {
		t.Fatal(err)
	}
	for i, a := range agents {
		if err := a.Start(opts[i]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := a.Stop(context.Background()); err != nil {
				t.Errorf("%s: %v", a.Name, err)
			}
			if t.Failed() {
				t.Logf("log of %s:\n%s", a.Name, a.Tail(40))
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, a := range agents {
		if _, err := a.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := agents[0], agents[1]
	ca, cb := start(t, alice.Dir), start(t, bob.Dir)

	var st struct {
		OnionAddress string `json:"onion_address"`
		Ready        bool   `json:"ready"`
	}
	decode(t, "status", call(t, ca, "status", map[string]any{}), &st)
	if !st.Ready || st.OnionAddress != alice.ID.OnionAddress() {
		t.Errorf("status %+v", st)
	}

	var conn struct {
		PeerID string `json:"peer_id"`
	}
	decode(t, "connect", call(t, ca, "connect", map[string]any{"address": bob.ID.OnionAddress()}), &conn)
	if conn.PeerID != bob.ID.PeerID().String() {
		t.Errorf("connect reached %s, want %s", conn.PeerID, bob.ID.PeerID())
	}

	// Bob remembers something to Alice; Alice syncs and recalls it.
	decode(t, "remember", call(t, cb, "remember", map[string]any{"text": "bob was here", "tags": []string{"net"}, "to": []string{alice.ID.OnionAddress()}}), &messageOut{})
	var sum struct {
		Received int `json:"received"`
		Failed   int `json:"failed"`
	}
	decode(t, "sync", call(t, ca, "sync", map[string]any{"peer": bob.ID.OnionAddress()}), &sum)
	if sum.Received < 1 || sum.Failed != 0 {
		t.Errorf("sync %+v", sum)
	}
	var rec struct {
		Memories []recalled `json:"memories"`
	}
	decode(t, "recall", call(t, ca, "recall", map[string]any{"tag": "net"}), &rec)
	if len(rec.Memories) != 1 || rec.Memories[0].Author != bob.ID.PubHex() || rec.Memories[0].Memory.Memory.Insight != "bob was here" {
		t.Errorf("recall after sync %+v", rec.Memories)
	}

	var ad struct {
		Services []string `json:"services"`
	}
	decode(t, "advertise", call(t, cb, "advertise", map[string]any{"services": []string{"mcp_test"}}), &ad)
	if !slices.Contains(ad.Services, "mcp_test") {
		t.Errorf("advertise %+v", ad)
	}
	var disc struct {
		Service string `json:"service"`
	}
	decode(t, "discover", call(t, ca, "discover", map[string]any{"service": "mcp_test"}), &disc)
	if disc.Service != "mcp_test" {
		t.Errorf("discover %+v", disc)
	}

	var inv struct {
		Invite string `json:"invite"`
	}
	decode(t, "invite", call(t, cb, "invite", map[string]any{"read": true}), &inv)
	var joined struct {
		OnionAddress string `json:"onion_address"`
		GrantedRead  bool   `json:"granted_read"`
		GrantedWrite bool   `json:"granted_write"`
	}
	decode(t, "join", call(t, ca, "join", map[string]any{"invite": inv.Invite, "alias": "bobby"}), &joined)
	if joined.OnionAddress != bob.ID.OnionAddress() || !joined.GrantedRead || joined.GrantedWrite {
		t.Errorf("join %+v", joined)
	}
}
