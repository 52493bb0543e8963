package memory

import (
	"context"
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

// Payload is the type-tagged body of a Memory. Only the fields of its Type
// are set (the others are omitted from JSON), mirroring a serde internally
// tagged enum. Fields shared by several types share a JSON name.
type Payload struct {
	Type Type `json:"type"`

	// Observation: what was seen about what.
	Subject string `json:"subject,omitempty"`
	Insight string `json:"insight,omitempty"` // also Reflection's main field
	// Confidence in [0, 1]. The reference has it on Observation only; this
	// package allows it on every type so that recall can filter on it.
	Confidence *float64 `json:"confidence,omitempty"`

	// Learning: a lesson about a topic.
	Topic        string   `json:"topic,omitempty"`
	Lesson       string   `json:"lesson,omitempty"`
	Context      string   `json:"context,omitempty"` // also Question
	ApplicableTo []string `json:"applicable_to,omitempty"`

	// Relationship: how the author relates to an entity.
	Entity   string `json:"entity,omitempty"`
	Relation string `json:"relation,omitempty"`

	// Task and Experience: what to do or what happened.
	Description string `json:"description,omitempty"` // also Relationship
	Status      string `json:"status,omitempty"`      // Task: pending, done, ...
	Outcome     string `json:"outcome,omitempty"`     // Task, Experience

	// Reflection: what prompted it (Insight holds the reflection).
	Trigger string `json:"trigger,omitempty"`

	// Question: an open question and, later, its answer.
	Question string `json:"question,omitempty"`
	Answer   string `json:"answer,omitempty"`

	// Custom: free-form data under a schema name.
	Schema string          `json:"schema,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// Text returns the main free-text field of the payload.
func (p Payload) Text() string {
	switch p.Type {
	case Observation, Reflection:
		return p.Insight
	case Learning:
		return p.Lesson
	case Relationship, Task, Experience:
		return p.Description
	case Question:
		return p.Question
	case Custom:
		return string(p.Data)
	}
	return ""
}

// MarshalJSON writes the fields of the payload's type, always including
// the ones the reference schema requires even when empty: an Observation's
// subject and insight, a Learning's topic, lesson, context and
// applicable_to (an empty array, never null). Other fields are omitted
// when empty.
func (p Payload) MarshalJSON() ([]byte, error) {
	type plain Payload // no MarshalJSON: no recursion
	switch p.Type {
	case Observation:
		return json.Marshal(struct {
			plain
			Subject string `json:"subject"`
			Insight string `json:"insight"`
		}{plain(p), p.Subject, p.Insight})
	case Learning:
		applicable := p.ApplicableTo
		if applicable == nil {
			applicable = []string{}
		}
		return json.Marshal(struct {
			plain
			Topic        string   `json:"topic"`
			Lesson       string   `json:"lesson"`
			Context      string   `json:"context"`
			ApplicableTo []string `json:"applicable_to"`
		}{plain(p), p.Topic, p.Lesson, p.Context, applicable})
	}
	return json.Marshal(plain(p))
}

// DefaultObservationConfidence is the confidence of an observation made
// without one: the reference schema requires a confidence on every
// Observation, and the reference CLI uses 0.5 when none is given.
const DefaultObservationConfidence = 0.5

// NewMemory builds a structured memory of type typ (observation, learning,
// relationship, task, experience, reflection or question, any case) with
// text in the type's main field. The first tag, if any, fills the type's
// subject-like field (subject, topic, entity). confidence, if not nil,
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
	p := Payload{Type: t, Confidence: conf}
	switch t {
	case Observation:
		p.Subject, p.Insight = subject, text
	case Learning:
		p.Topic, p.Lesson = subject, text
	case Relationship:
		p.Entity, p.Description = subject, text
	case Task:
		p.Description, p.Status = text, "pending"
	case Experience:
		p.Description = text
	case Reflection:
		p.Insight = text
	case Question:
		p.Question = text
	}
	return Memory{
		ID:         newUUID(),
		Memory:     p,
		Tags:       append([]string{}, tags...),
		References: []string{},
		Metadata:   map[string]string{},
		CreatedAt:  time.Now().UTC(),
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
	Author        string // author key hex, or a prefix of it
	// IncludeExpired keeps memories whose expires_at has passed.
	IncludeExpired bool
}

// Recalled is a structured memory with the message that carried it.
type Recalled struct {
	Memory    Memory
	Message   Message
	MessageID string
}

// Recall returns the structured memories in validly signed messages that
// match f, oldest message first. Plain-text messages and invalid messages
// are skipped.
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
	now := time.Now()
	var out []Recalled
	for _, e := range es {
		if !e.Valid || !strings.HasPrefix(e.Message.Author, strings.ToLower(f.Author)) {
			continue
		}
		m, err := ParseMemory(e.Message.Content)
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
		out = append(out, Recalled{Memory: m, Message: e.Message, MessageID: e.ID})
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
