package memory

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Type names a kind of structured memory, spelled as the reference's serde
// tag ("Observation", ...).
type Type string

// The memory types. Custom is accepted when parsing but not created by
// NewMemory, which has no schema to put free text into.
const (
	Observation  Type = "Observation"
	Learning     Type = "Learning"
	Relationship Type = "Relationship"
	Task         Type = "Task"
	Experience   Type = "Experience"
	Reflection   Type = "Reflection"
	Question     Type = "Question"
	Custom       Type = "Custom"
)

var knownTypes = []Type{Observation, Learning, Relationship, Task, Experience, Reflection, Question, Custom}

// ErrUnknownType is returned for a memory type that is not one of the above.
var ErrUnknownType = errors.New("memory: unknown memory type")

// ErrNotStructured is returned by ParseMemory for content that is not a
// structured memory (for example a plain text post).
var ErrNotStructured = errors.New("memory: content is not a structured memory")

// ParseType accepts a type name in any case ("learning", "Learning").
func ParseType(s string) (Type, error) {
	for _, t := range knownTypes {
		if strings.EqualFold(s, string(t)) {
			return t, nil
		}
	}
	valid := make([]string, 0, len(knownTypes)-1)
	for _, t := range knownTypes[:len(knownTypes)-1] {
		valid = append(valid, strings.ToLower(string(t)))
	}
	return "", fmt.Errorf("%w %q (valid types: %s)", ErrUnknownType, s, strings.Join(valid, ", "))
}

// Memory is the structured content of a message, in the reference's JSON
// shape: {"id", "memory": {"type": ..., fields of that type}, "tags",
// "references", "metadata", "created_at", "expires_at"}.
type Memory struct {
	ID         string            `json:"id"`
	Memory     Payload           `json:"memory"`
	Tags       []string          `json:"tags"`
	References []string          `json:"references"` // IDs of related memories
	Metadata   map[string]string `json:"metadata"`
	CreatedAt  time.Time         `json:"created_at"`
	ExpiresAt  *time.Time        `json:"expires_at"`
}

// Payload is the type-tagged body of a Memory, field for field the
// reference's MemoryType (a serde internally tagged enum, src/memory.rs).
// Only the fields of its Type are written; the ones the reference requires
// are always written, even when empty, so a reference peer can parse every
// memory made here. Fields shared by several types share a JSON name.
type Payload struct {
	Type Type `json:"type"`

	// Observation: what was seen about what.
	Subject string `json:"subject,omitempty"`
	Insight string `json:"insight,omitempty"`
	// Confidence in [0, 1]. The reference has it on Observation only; this
	// package allows it on every type so that recall can filter on it
	// (serde ignores the member where it does not expect it).
	Confidence *float64 `json:"confidence,omitempty"`

	// Learning: a lesson about a topic.
	Topic        string   `json:"topic,omitempty"`
	Lesson       string   `json:"lesson,omitempty"`
	Context      string   `json:"context,omitempty"` // also Relationship, Question
	ApplicableTo []string `json:"applicable_to,omitempty"`

	// Relationship: context (above) about an identity (a key or a name).
	Identity        string     `json:"identity,omitempty"`
	RapportLevel    int        `json:"rapport_level,omitempty"`
	LastInteraction *time.Time `json:"last_interaction,omitempty"`
	SharedMemories  []string   `json:"shared_memories,omitempty"`

	// Task: a goal and its progress.
	Description string     `json:"description,omitempty"` // also Experience
	Status      string     `json:"status,omitempty"`      // NotStarted, InProgress, Blocked, Completed, Abandoned
	Started     *time.Time `json:"started,omitempty"`
	Completed   *time.Time `json:"completed,omitempty"`
	Blockers    []string   `json:"blockers,omitempty"`
	Learnings   []string   `json:"learnings,omitempty"`

	// Experience: a description (above) with its feel.
	Valence float64  `json:"valence,omitempty"` // -1 (negative) to 1 (positive)
	Arousal float64  `json:"arousal,omitempty"` // 0 (calm) to 1 (excited)
	Tags    []string `json:"tags,omitempty"`    // the reference's own, besides Memory.Tags

	// Reflection: a change the author noticed in itself.
	Observation   string  `json:"observation,omitempty"`
	ComparisonTo  *string `json:"comparison_to,omitempty"` // an earlier memory's ID
	DriftDetected bool    `json:"drift_detected,omitempty"`
	Significance  string  `json:"significance,omitempty"` // Minor, Notable, Major, Critical

	// Question: an open question (with its context, above) and, later, its
	// answer.
	Query    string  `json:"query,omitempty"`
	Priority string  `json:"priority,omitempty"` // Low, Medium, High, Urgent
	Answered *string `json:"answered,omitempty"`

	// Custom: free-form data under a schema name.
	Schema string          `json:"schema,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Text returns the main free-text field of the payload.
func (p Payload) Text() string {
	switch p.Type {
	case Observation:
		return p.Insight
	case Learning:
		return p.Lesson
	case Relationship:
		return p.Context
	case Task, Experience:
		return p.Description
	case Reflection:
		return p.Observation
	case Question:
		return p.Query
	case Custom:
		return string(p.Data)
	}
	return ""
}

// MarshalJSON writes the fields of the payload's type, always including
// the ones the reference requires (its non-Option fields) even when empty:
// strings as "", lists as [], numbers as 0, enums as their first variant.
// Option fields (expires_at-like) are written as null when unset.
func (p Payload) MarshalJSON() ([]byte, error) {
	type plain Payload // no MarshalJSON: no recursion
	list := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	switch p.Type {
	case Observation:
		c := 0.0
		if p.Confidence != nil {
			c = *p.Confidence
		}
		return json.Marshal(struct {
			plain
			Subject    string  `json:"subject"`
			Insight    string  `json:"insight"`
			Confidence float64 `json:"confidence"`
		}{plain(p), p.Subject, p.Insight, c})
	case Learning:
		return json.Marshal(struct {
			plain
			Topic        string   `json:"topic"`
			Lesson       string   `json:"lesson"`
			Context      string   `json:"context"`
			ApplicableTo []string `json:"applicable_to"`
		}{plain(p), p.Topic, p.Lesson, p.Context, list(p.ApplicableTo)})
	case Relationship:
		return json.Marshal(struct {
			plain
			Identity        string    `json:"identity"`
			Context         string    `json:"context"`
			RapportLevel    int       `json:"rapport_level"`
			LastInteraction time.Time `json:"last_interaction"`
			SharedMemories  []string  `json:"shared_memories"`
		}{plain(p), p.Identity, p.Context, p.RapportLevel, orZero(p.LastInteraction), list(p.SharedMemories)})
	case Task:
		return json.Marshal(struct {
			plain
			Description string     `json:"description"`
			Status      string     `json:"status"`
			Started     time.Time  `json:"started"`
			Completed   *time.Time `json:"completed"`
			Blockers    []string   `json:"blockers"`
			Learnings   []string   `json:"learnings"`
		}{plain(p), p.Description, or(p.Status, TaskNotStarted), orZero(p.Started), p.Completed, list(p.Blockers), list(p.Learnings)})
	case Experience:
		return json.Marshal(struct {
			plain
			Description string   `json:"description"`
			Valence     float64  `json:"valence"`
			Arousal     float64  `json:"arousal"`
			Tags        []string `json:"tags"`
		}{plain(p), p.Description, p.Valence, p.Arousal, list(p.Tags)})
	case Reflection:
		return json.Marshal(struct {
			plain
			Observation   string  `json:"observation"`
			ComparisonTo  *string `json:"comparison_to"`
			DriftDetected bool    `json:"drift_detected"`
			Significance  string  `json:"significance"`
		}{plain(p), p.Observation, p.ComparisonTo, p.DriftDetected, or(p.Significance, SignificanceMinor)})
	case Question:
		return json.Marshal(struct {
			plain
			Query    string  `json:"query"`
			Context  string  `json:"context"`
			Priority string  `json:"priority"`
			Answered *string `json:"answered"`
		}{plain(p), p.Query, p.Context, or(p.Priority, PriorityMedium), p.Answered})
	case Custom:
		data := p.Data
		if len(data) == 0 {
			data = json.RawMessage("null")
		}
		return json.Marshal(struct {
			plain
			Schema string          `json:"schema"`
			Data   json.RawMessage `json:"data"`
		}{plain(p), p.Schema, data})
	}
	return json.Marshal(plain(p))
}

// orZero is *t, or the zero time for a required timestamp left unset.
func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// Values of the reference's enums that NewMemory uses.
const (
	TaskNotStarted    = "NotStarted"
	SignificanceMinor = "Minor"
	PriorityMedium    = "Medium"
)

// DefaultObservationConfidence is the confidence of an observation made
// without one: the reference schema requires a confidence on every
// Observation, and the reference CLI uses 0.5 when none is given.
const DefaultObservationConfidence = 0.5

// NewMemory builds a structured memory of type typ (observation, learning,
// relationship, task, experience, reflection or question, any case) with
// text in the type's main field. The first tag, if any, fills the type's
// subject-like field (subject, topic, identity); "general" when none. confidence, if not nil,
// must lie in [0, 1]; when nil only an observation gets one
// (DefaultObservationConfidence) and other types carry none, so that a
// recall with a minimum confidence does not hide them.
func NewMemory(typ, text string, tags []string, confidence *float64) (Memory, error) {
	t, err := ParseType(typ)
	if err == nil && t == Custom {
		err = fmt.Errorf("%w %q: custom memories need a schema (valid types: observation, learning, relationship, task, experience, reflection, question)", ErrUnknownType, typ)
	}
	if err != nil {
		return Memory{}, err
	}
	var conf *float64
	if confidence != nil {
		c := *confidence
		if math.IsNaN(c) || c < 0 || c > 1 {
			return Memory{}, fmt.Errorf("memory: confidence %v outside [0, 1]", c)
		}
		conf = &c
	} else if t == Observation {
		c := DefaultObservationConfidence
		conf = &c
	}
	subject := "general"
	if len(tags) > 0 {
		subject = tags[0]
	}
	now := time.Now().UTC()
	p := Payload{Type: t, Confidence: conf}
	switch t {
	case Observation:
		p.Subject, p.Insight = subject, text
	case Learning:
		p.Topic, p.Lesson = subject, text
	case Relationship:
		p.Identity, p.Context, p.LastInteraction = subject, text, &now
	case Task:
		p.Description, p.Status, p.Started = text, TaskNotStarted, &now
	case Experience:
		p.Description, p.Tags = text, append([]string{}, tags...)
	case Reflection:
		p.Observation, p.Significance = text, SignificanceMinor
	case Question:
		p.Query, p.Priority = text, PriorityMedium
	}
	return Memory{
		ID:         newUUID(),
		Memory:     p,
		Tags:       append([]string{}, tags...),
		References: []string{},
		Metadata:   map[string]string{},
		CreatedAt:  now,
	}, nil
}

// JSON returns the memory as message content.
func (m Memory) JSON() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("memory: encode memory: %w", err)
	}
	return string(b), nil
}

// ParseMemory parses message content as a structured memory. Content that
// is not a JSON object with a "memory" member gives ErrNotStructured; an
// unknown type gives ErrUnknownType.
func ParseMemory(content string) (Memory, error) {
	var probe struct {
		Memory *json.RawMessage `json:"memory"`
	}
	if err := json.Unmarshal([]byte(content), &probe); err != nil || probe.Memory == nil {
		return Memory{}, ErrNotStructured
	}
	var m Memory
	if err := json.Unmarshal([]byte(content), &m); err != nil {
		return Memory{}, fmt.Errorf("%w: %v", ErrNotStructured, err)
	}
	t, err := ParseType(string(m.Memory.Type))
	if err != nil {
		return Memory{}, err
	}
	m.Memory.Type = t
	return m, nil
}

// Filter selects memories for Recall. Zero fields do not filter.
type Filter struct {
	Type  string    // memory type, any case
	Tag   string    // must be among the tags (case-insensitive)
	Since time.Time // created at or after
	// MinConfidence hides memories whose stated confidence is below it.
	// Memories that state no confidence (the reference gives one to
	// observations only) are kept: the filter ranks stated beliefs, it
	// does not demand one.
	MinConfidence float64
	// Author, if set, is the whole author key (64 hex); a prefix matches
	// nothing, since anyone can grind a key that shares one.
	Author string
	// Authors, if not nil, keeps only these authors (64 hex keys).
	Authors map[string]bool
	// IncludeExpired keeps memories whose expires_at has passed.
	IncludeExpired bool
	// Open, when set, gives the content to parse for a validly signed
	// message, or ok false to skip it. It lets a caller decrypt sealed
	// content (package seal) without this package knowing about
	// encryption: seal sits above memory. Nil parses the stored content.
	Open func(m Message) (content string, ok bool)
	// Identity, when set, opens the reference mmogit encrypted envelopes
	// it sealed (see OpenEnvelopes) so that their memories are found too.
	Identity ed25519.PrivateKey
}

// Recalled is a structured memory with the message that carried it.
type Recalled struct {
	Memory    Memory
	Message   Message // as stored and signed
	MessageID string
	// Content is what Memory was parsed from: Message.Content, or what
	// Filter.Open returned for it.
	Content string
	// Envelope: the message was stored in a reference mmogit encrypted
	// envelope (and opened with Filter.Identity).
	Envelope bool
}

// Recall returns the structured memories in validly signed messages that
// match f, oldest message first. Plain-text messages, invalid messages and
// messages f.Open refuses are skipped.
func (s *Store) Recall(ctx context.Context, f Filter) ([]Recalled, error) {
	var want Type
	if f.Type != "" {
		t, err := ParseType(f.Type)
		if err != nil {
			return nil, err
		}
		want = t
	}
	es, err := s.All(ctx)
	if err != nil {
		return nil, err
	}
	es = OpenEnvelopes(es, f.Identity)
	now := time.Now()
	var out []Recalled
	seen := map[string]bool{} // the reference copies plain files onto its -encrypted branch
	for _, e := range es {
		if !e.Valid || seen[e.ID] || (f.Author != "" && e.Message.Author != strings.ToLower(f.Author)) {
			continue
		}
		if f.Authors != nil && !f.Authors[e.Message.Author] {
			continue
		}
		content := e.Message.Content
		if f.Open != nil {
			c, ok := f.Open(e.Message)
			if !ok {
				continue
			}
			content = c
		}
		m, err := ParseMemory(content)
		if err != nil {
			continue
		}
		if want != "" && m.Memory.Type != want {
			continue
		}
		if f.Tag != "" && !hasTag(m.Tags, f.Tag) {
			continue
		}
		if !f.Since.IsZero() && m.CreatedAt.Before(f.Since) {
			continue
		}
		if c := m.Memory.Confidence; f.MinConfidence > 0 && c != nil && *c < f.MinConfidence {
			continue
		}
		if !f.IncludeExpired && m.ExpiresAt != nil && m.ExpiresAt.Before(now) {
			continue
		}
		seen[e.ID] = true
		out = append(out, Recalled{Memory: m, Message: e.Message, MessageID: e.ID, Content: content, Envelope: e.Envelope != nil})
	}
	return out, nil
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// newUUID returns a random (version 4) UUID, the reference's memory id form.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics on failure instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
