package memory

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestNewMemoryMainField(t *testing.T) {
	tests := []struct {
		typ   string
		want  Type
		field func(p Payload) string
	}{
		{"observation", Observation, func(p Payload) string { return p.Insight }},
		{"Learning", Learning, func(p Payload) string { return p.Lesson }},
		{"relationship", Relationship, func(p Payload) string { return p.Context }},
		{"TASK", Task, func(p Payload) string { return p.Description }},
		{"experience", Experience, func(p Payload) string { return p.Description }},
		{"reflection", Reflection, func(p Payload) string { return p.Observation }},
		{"question", Question, func(p Payload) string { return p.Query }},
	}
	for _, tc := range tests {
		m, err := NewMemory(tc.typ, "the text", []string{"rust"}, conf(0.5))
		if err != nil {
			t.Fatalf("%s: %v", tc.typ, err)
		}
		if m.Memory.Type != tc.want || tc.field(m.Memory) != "the text" || m.Memory.Text() != "the text" {
			t.Fatalf("%s: %+v", tc.typ, m.Memory)
		}
		js, err := m.JSON()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseMemory(js)
		if err != nil || back.ID != m.ID || back.Memory.Text() != "the text" {
			t.Fatalf("%s: round trip %+v, %v", tc.typ, back, err)
		}
	}
}

func TestMemoryJSONShape(t *testing.T) {
	m, _ := NewMemory("observation", "gits are trees", []string{"git"}, conf(0.9))
	js, _ := m.JSON()
	var raw map[string]any
	if err := json.Unmarshal([]byte(js), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "memory", "tags", "references", "metadata", "created_at", "expires_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("missing %q in %s", k, js)
		}
	}
	want := map[string]any{"type": "Observation", "subject": "git", "insight": "gits are trees", "confidence": 0.9}
	got := raw["memory"].(map[string]any)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("memory = %v, want %v", got, want)
	}
	// A reference-style Learning parses.
	ref := `{"id":"x","memory":{"type":"Learning","topic":"t","lesson":"l","context":"c","applicable_to":["a"]},"tags":[],"references":[],"metadata":{},"created_at":"2025-01-01T00:00:00Z","expires_at":null}`
	p, err := ParseMemory(ref)
	if err != nil || p.Memory.Lesson != "l" || p.Memory.ApplicableTo[0] != "a" {
		t.Fatalf("ParseMemory(ref) = %+v, %v", p, err)
	}
}

func conf(c float64) *float64 { return &c }

// TestConfidenceOnlyWhenGiven: without a confidence, only an observation
// gets one (the reference's default, its schema requires it); other types
// carry none, so a recall with a minimum does not hide them.
func TestConfidenceOnlyWhenGiven(t *testing.T) {
	for _, typ := range []string{"learning", "relationship", "task", "experience", "reflection", "question"} {
		m, err := NewMemory(typ, "x", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := m.JSON()
		if m.Memory.Confidence != nil || strings.Contains(js, "confidence") {
			t.Errorf("%s without --confidence: %s", typ, js)
		}
	}
	m, _ := NewMemory("observation", "x", nil, nil)
	if m.Memory.Confidence == nil || *m.Memory.Confidence != DefaultObservationConfidence {
		t.Errorf("observation without confidence: %+v", m.Memory)
	}
	m, _ = NewMemory("task", "x", nil, conf(0))
	if js, _ := m.JSON(); !strings.Contains(js, `"confidence":0`) {
		t.Errorf("explicit confidence 0 dropped: %s", js)
	}
}

// TestRequiredFieldsEmitted: the fields the reference schema requires are
// written even when empty, so reference peers can parse our memories.
func TestRequiredFieldsEmitted(t *testing.T) {
	// Every non-Option field of the reference's MemoryType variant, and
	// its Option fields as null (src/memory.rs in the reference).
	cases := map[string]map[string]string{
		"learning":     {"topic": `"general"`, "lesson": `""`, "context": `""`, "applicable_to": `[]`},
		"observation":  {"subject": `"general"`, "insight": `""`, "confidence": `0.5`},
		"relationship": {"identity": `"general"`, "context": `""`, "rapport_level": `0`, "last_interaction": "", "shared_memories": `[]`},
		"task":         {"description": `""`, "status": `"NotStarted"`, "started": "", "completed": `null`, "blockers": `[]`, "learnings": `[]`},
		"experience":   {"description": `""`, "valence": `0`, "arousal": `0`, "tags": `[]`},
		"reflection":   {"observation": `""`, "comparison_to": `null`, "drift_detected": `false`, "significance": `"Minor"`},
		"question":     {"query": `""`, "context": `""`, "priority": `"Medium"`, "answered": `null`},
	}
	for typ, want := range cases {
		m, err := NewMemory(typ, "", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := m.JSON()
		var raw struct{ Memory map[string]json.RawMessage }
		if err := json.Unmarshal([]byte(js), &raw); err != nil {
			t.Fatal(err)
		}
		for k, v := range want {
			got, ok := raw.Memory[k]
			if v == "" { // a timestamp: present and RFC 3339
				var ts time.Time
				if !ok || json.Unmarshal(got, &ts) != nil || ts.IsZero() {
					t.Errorf("%s: %s = %s, want a timestamp (in %s)", typ, k, got, js)
				}
				continue
			}
			if string(got) != v {
				t.Errorf("%s: %s = %s, want %s (in %s)", typ, k, got, v, js)
			}
		}
		back, err := ParseMemory(js)
		if err != nil || back.Memory.Type == "" {
			t.Fatalf("%s: round trip %v", typ, err)
		}
	}
	// Other types do not grow Learning's fields.
	m, _ := NewMemory("task", "t", nil, nil)
	if js, _ := m.JSON(); strings.Contains(js, "applicable_to") || strings.Contains(js, "context") {
		t.Errorf("task: %s", js)
	}
}

// TestParseReferenceMemories: memories of every type as the reference
// (serde, src/memory.rs) writes them parse, and recall shows their main
// text.
func TestParseReferenceMemories(t *testing.T) {
	const envelope = `{"id":"mem_1","memory":%s,"tags":["t"],"references":[],"metadata":{},"created_at":"2025-08-01T12:00:00.123456Z","expires_at":null}`
	tests := []struct {
		payload string
		typ     Type
		text    string
		check   func(p Payload) bool
	}{
		{`{"type":"Observation","subject":"user","insight":"likes short answers","confidence":0.8}`, Observation, "likes short answers",
			func(p Payload) bool { return p.Subject == "user" && p.Confidence != nil && *p.Confidence == 0.8 }},
		{`{"type":"Learning","topic":"Rust","lesson":"ownership prevents bugs","context":"docs","applicable_to":["go"]}`, Learning, "ownership prevents bugs",
			func(p Payload) bool { return p.Context == "docs" && len(p.ApplicableTo) == 1 }},
		{`{"type":"Relationship","identity":"ab12","context":"pair programmed","rapport_level":3,"last_interaction":"2025-08-01T12:00:00Z","shared_memories":["mem_0"]}`, Relationship, "pair programmed",
			func(p Payload) bool {
				return p.Identity == "ab12" && p.RapportLevel == 3 && p.LastInteraction != nil && len(p.SharedMemories) == 1
			}},
		{`{"type":"Task","description":"ship sync","status":"InProgress","started":"2025-08-01T12:00:00Z","completed":null,"blockers":["tor"],"learnings":[]}`, Task, "ship sync",
			func(p Payload) bool {
				return p.Status == "InProgress" && p.Started != nil && p.Completed == nil && len(p.Blockers) == 1
			}},
		{`{"type":"Experience","description":"first sync","valence":0.9,"arousal":0.4,"tags":["joy"]}`, Experience, "first sync",
			func(p Payload) bool { return p.Valence == 0.9 && p.Arousal == 0.4 && len(p.Tags) == 1 }},
		{`{"type":"Reflection","observation":"I answer shorter now","comparison_to":"mem_0","drift_detected":true,"significance":"Notable"}`, Reflection, "I answer shorter now",
			func(p Payload) bool {
				return p.DriftDetected && p.Significance == "Notable" && p.ComparisonTo != nil && *p.ComparisonTo == "mem_0"
			}},
		{`{"type":"Question","query":"why 4 relays?","context":"testnet","priority":"High","answered":null}`, Question, "why 4 relays?",
			func(p Payload) bool { return p.Priority == "High" && p.Answered == nil && p.Context == "testnet" }},
		{`{"type":"Custom","schema":"session_marker","data":{"event":"session_start"}}`, Custom, `{"event":"session_start"}`,
			func(p Payload) bool { return p.Schema == "session_marker" }},
	}
	for _, tt := range tests {
		m, err := ParseMemory(fmt.Sprintf(envelope, tt.payload))
		if err != nil {
			t.Fatalf("%s: %v", tt.typ, err)
		}
		if m.Memory.Type != tt.typ || m.Memory.Text() != tt.text || !tt.check(m.Memory) {
			t.Errorf("%s: parsed %+v (text %q)", tt.typ, m.Memory, m.Memory.Text())
		}
		// Written back, it keeps what the reference wrote.
		js, err := m.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var a, b struct{ Memory map[string]any }
		json.Unmarshal([]byte(fmt.Sprintf(envelope, tt.payload)), &a)
		json.Unmarshal([]byte(js), &b)
		for k, v := range a.Memory {
			if fmt.Sprint(b.Memory[k]) != fmt.Sprint(v) {
				t.Errorf("%s: %s = %v after a round trip, want %v", tt.typ, k, b.Memory[k], v)
			}
		}
	}
}

func TestMemoryErrors(t *testing.T) {
	_, err := NewMemory("dream", "x", nil, conf(0.5))
	if !errors.Is(err, ErrUnknownType) || !strings.Contains(err.Error(), "observation, learning, relationship, task, experience, reflection, question") {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := NewMemory("custom", "x", nil, conf(0.5)); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("custom: %v", err)
	}
	if _, err := NewMemory("task", "x", nil, conf(1.5)); err == nil {
		t.Fatal("confidence 1.5 accepted")
	}
	for _, c := range []string{"plain text", `{"id":"x"}`, `[1]`} {
		if _, err := ParseMemory(c); !errors.Is(err, ErrNotStructured) {
			t.Errorf("ParseMemory(%q) = %v", c, err)
		}
	}
	if _, err := ParseMemory(`{"memory":{"type":"Dream"}}`); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type parsed: %v", err)
	}
}

func TestRecall(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	k := testKey(t)
	post := func(typ, text string, tags []string, conf *float64, age time.Duration, expired bool) {
		t.Helper()
		m, err := NewMemory(typ, text, tags, conf)
		if err != nil {
			t.Fatal(err)
		}
		m.CreatedAt = time.Now().Add(-age).UTC()
		if expired {
			e := time.Now().Add(-time.Minute)
			m.ExpiresAt = &e
		}
		js, _ := m.JSON()
		if _, err := s.Post(ctx, k, js); err != nil {
			t.Fatal(err)
		}
	}
	post("observation", "obs old", []string{"go"}, conf(0.9), 48*time.Hour, false)
	post("learning", "learn", []string{"Rust", "go"}, conf(0.4), time.Hour, false)
	post("task", "task", nil, conf(0.7), time.Minute, false)
	post("question", "expired q", []string{"go"}, conf(1), time.Minute, true)
	post("reflection", "unrated", nil, nil, time.Minute, false)
	if _, err := s.Post(ctx, k, "plain text, not a memory"); err != nil {
		t.Fatal(err)
	}
	// A memory in a wrapping only the Open hook undoes (as seal does):
	// invisible without the hook, found by type and tag with it.
	hidden, _ := NewMemory("learning", "hidden", []string{"secret"}, nil)
	hjs, _ := hidden.JSON()
	if _, err := s.Post(ctx, k, "wrapped:"+hex.EncodeToString([]byte(hjs))); err != nil {
		t.Fatal(err)
	}
	unwrap := func(m Message) (string, bool) {
		if c, ok := strings.CutPrefix(m.Content, "wrapped:"); ok {
			b, err := hex.DecodeString(c)
			return string(b), err == nil
		}
		return m.Content, true
	}
	// A refusal skips the message even if the hook returned content.
	refuseWrapped := func(m Message) (string, bool) {
		c, _ := unwrap(m)
		return c, !strings.HasPrefix(m.Content, "wrapped:")
	}
	// A forged structured memory injected with the git CLI is ignored.
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, []string{"obs old", "learn", "task", "unrated"}},
		{"type", Filter{Type: "LEARNING"}, []string{"learn"}},
		{"tag any case", Filter{Tag: "rust"}, []string{"learn"}},
		{"tag shared", Filter{Tag: "go"}, []string{"obs old", "learn"}},
		{"since", Filter{Since: time.Now().Add(-2 * time.Hour)}, []string{"learn", "task", "unrated"}},
		// A memory without a stated confidence is not hidden by a minimum.
		{"min confidence", Filter{MinConfidence: 0.7}, []string{"obs old", "task", "unrated"}},
		{"min confidence above all", Filter{MinConfidence: 0.95, Type: "task"}, nil},
		{"expired kept", Filter{Type: "question", IncludeExpired: true}, []string{"expired q"}},
		{"author prefix matches nothing", Filter{Author: "D75A98", Type: "task"}, nil},
		{"other author", Filter{Author: "00"}, nil},
		{"whole author key, any case", Filter{Author: strings.ToUpper(hex.EncodeToString(k.Public().(ed25519.PublicKey))), Type: "task"}, []string{"task"}},
		{"authors set", Filter{Authors: map[string]bool{hex.EncodeToString(k.Public().(ed25519.PublicKey)): true}, Type: "task"}, []string{"task"}},
		{"authors set without us", Filter{Authors: map[string]bool{}}, nil},
		{"open hook", Filter{Type: "learning", Tag: "secret", Open: unwrap}, []string{"hidden"}},
		{"open hook all", Filter{Open: unwrap}, []string{"obs old", "learn", "task", "unrated", "hidden"}},
		{"open hook refuses", Filter{Open: refuseWrapped, Tag: "secret"}, nil},
		{"open hook refuses all", Filter{Open: func(m Message) (string, bool) { c, _ := unwrap(m); return c, false }}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Recall(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var texts []string
			for _, r := range got {
				texts = append(texts, r.Memory.Memory.Text())
				if r.MessageID != r.Message.ID() {
					t.Errorf("MessageID mismatch")
				}
				if tc.f.Open == nil && r.Content != r.Message.Content || !strings.Contains(r.Content, r.Memory.ID) {
					t.Errorf("Content %.40q does not hold memory %s", r.Content, r.Memory.ID)
				}
			}
			if fmt.Sprint(texts) != fmt.Sprint(tc.want) {
				t.Fatalf("Recall(%+v) = %q, want %q", tc.f, texts, tc.want)
			}
		})
	}
	if _, err := s.Recall(ctx, Filter{Type: "dream"}); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("Recall unknown type: %v", err)
	}
}

func BenchmarkPost(b *testing.B) {
	ctx := context.Background()
	s := openStore(b)
	k := testKey(b)
	for i := 0; b.Loop(); i++ {
		if _, err := s.Post(ctx, k, fmt.Sprintf("benchmark memory %d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdd1000 imports 1,000 messages from 10 authors in one call.
func BenchmarkAdd1000(b *testing.B) {
	ctx := context.Background()
	var msgs []Message
	for i := range 1000 {
		msgs = append(msgs, Sign(otherKey(b, byte(i%10)), fmt.Sprintf("peer memory %d", i), time.Unix(int64(i), 0)))
	}
	for b.Loop() {
		b.StopTimer()
		s := openStore(b)
		b.StartTimer()
		res, err := s.Add(ctx, msgs)
		if err != nil || res.Added != 1000 {
			b.Fatalf("Add = %+v, %v", res, err)
		}
	}
}

// TestParseSerdeMemories: testdata/reference_serde.jsonl was written by
// the reference's own Rust types (serde 1.0.152, serde_json 1.0.87, chrono
// 0.4.23 from Debian) and constructors, one memory per type; each parses
// here with its main text, and written back it keeps every member serde
// wrote. (The same program parsed what NewMemory writes for all seven
// types that remember makes.)
func TestParseSerdeMemories(t *testing.T) {
	b, err := os.ReadFile("testdata/reference_serde.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := map[Type]string{
		Observation: "User prefers concise responses", Learning: "Ownership prevents bugs",
		Relationship: "first chat", Task: "write tests", Experience: "debugging session",
		Reflection: "More concise lately", Question: "How to improve?",
	}
	seen := map[Type]bool{}
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m, err := ParseMemory(line)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		seen[m.Memory.Type] = true
		if w, ok := want[m.Memory.Type]; ok && m.Memory.Text() != w {
			t.Errorf("line %d (%s): text %q, want %q", i+1, m.Memory.Type, m.Memory.Text(), w)
		}
		js, err := m.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var a, back map[string]any
		json.Unmarshal([]byte(line), &a)
		json.Unmarshal([]byte(js), &back)
		am, bm := a["memory"].(map[string]any), back["memory"].(map[string]any)
		for k, v := range am {
			if fmt.Sprint(bm[k]) != fmt.Sprint(v) {
				t.Errorf("line %d (%s): memory.%s = %v after a round trip, want %v", i+1, m.Memory.Type, k, bm[k], v)
			}
		}
	}
	if len(seen) != 8 {
		t.Errorf("types seen: %v, want all 8", seen)
	}
}
