package mcpserver

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Bounds on arguments, so that one call cannot make the server build
// something huge. Text is further bounded by memory.MaxContentBytes.
const (
	defaultLimit  = 50
	maxLimit      = 1000
	maxListItems  = 64  // tags, recipients, services
	maxShortField = 256 // a tag, a type, an author, a peer
)

// messageOut is a message as `mmogit --json show` prints it (and `post`,
// with branch and recipients). Content is the plaintext when the message
// is encrypted and readable here, else the content as stored.
type messageOut struct {
	memory.Message
	ID          string   `json:"id"`
	Branch      string   `json:"branch,omitempty"`
	Valid       bool     `json:"valid"`
	Error       string   `json:"error,omitempty"`
	Encrypted   bool     `json:"encrypted"`
	Readable    bool     `json:"readable"`
	AuthorLabel string   `json:"author_label,omitempty"`
	Sealed      string   `json:"sealed,omitempty"`
	Recipients  []string `json:"recipients,omitempty"`
	// As in `mmogit --json show`: a reference mmogit envelope, and one
	// this identity cannot open (valid false, but not a forgery).
	RefEnvelope  bool `json:"ref_envelope,omitempty"`
	Unverifiable bool `json:"unverifiable,omitempty"`
}

// recalledOut is a memory as `mmogit --json recall` prints it.
type recalledOut struct {
	MessageID   string        `json:"message_id"`
	Author      string        `json:"author"`
	AuthorLabel string        `json:"author_label"`
	Memory      memory.Memory `json:"memory"`
	Encrypted   bool          `json:"encrypted"`
	Readable    bool          `json:"readable"`
}

type rememberIn struct {
	Type       string   `json:"type,omitempty" jsonschema:"memory type: observation (default), learning, relationship, task, experience, reflection or question"`
	Text       string   `json:"text" jsonschema:"the memory itself, in the type's main field"`
	Tags       []string `json:"tags,omitempty" jsonschema:"tags to find it by; the first is also its subject (observation), topic (learning) or identity (relationship)"`
	Confidence *float64 `json:"confidence,omitempty" jsonschema:"confidence between 0 and 1 (observations default to 0.5)"`
	To         []string `json:"to,omitempty" jsonschema:"other agents who may read it: 64-hex key, onion address or peer ID"`
	Public     bool     `json:"public,omitempty" jsonschema:"store in clear, readable by every peer it reaches (default: encrypted to you and the to recipients)"`
}

type postIn struct {
	Text   string   `json:"text" jsonschema:"the message"`
	To     []string `json:"to,omitempty" jsonschema:"other agents who may read it: 64-hex key, onion address or peer ID"`
	Public bool     `json:"public,omitempty" jsonschema:"store in clear, readable by every peer it reaches (default: encrypted to you and the to recipients)"`
}

type recallIn struct {
	Type       string  `json:"type,omitempty" jsonschema:"only this memory type"`
	Tag        string  `json:"tag,omitempty" jsonschema:"only memories with this tag"`
	Author     string  `json:"author,omitempty" jsonschema:"only this author: 64-hex key, onion address, peer ID or trusted alias"`
	Hours      float64 `json:"hours,omitempty" jsonschema:"only memories from the last N hours"`
	Confidence float64 `json:"confidence,omitempty" jsonschema:"hide memories whose stated confidence is below this"`
	Limit      int     `json:"limit,omitempty" jsonschema:"at most this many, the newest (default 50, at most 1000)"`
	All        bool    `json:"all,omitempty" jsonschema:"search every author held, not only you and trusted peers"`
}

type recallOut struct {
	Memories []recalledOut `json:"memories"`
}

type showIn struct {
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many, the newest (default 50, at most 1000)"`
	Author string `json:"author,omitempty" jsonschema:"only this author: 64-hex key, onion address, peer ID or trusted alias"`
	All    bool   `json:"all,omitempty" jsonschema:"every message held, not only yours and trusted peers'"`
}

type showOut struct {
	Messages []messageOut `json:"messages"`
	// Hidden counts messages by untrusted authors left out (all shows them).
	Hidden int `json:"hidden"`
}

// whoamiOut is what `mmogit --json address` prints.
type whoamiOut struct {
	Pubkey       string `json:"pubkey"`
	OnionAddress string `json:"onion_address"`
	PeerID       string `json:"peer_id"`
	AgeRecipient string `json:"age_recipient"`
}

func (s *server) addMemoryTools(srv *mcp.Server) {
	addTool(s, srv, "remember", "Store a structured memory (observation, learning, relationship, task, experience, reflection, question), signed by this agent and encrypted to it (and to `to`) unless public. Find it later with recall.", s.remember)
	addTool(s, srv, "recall", "Find structured memories by type, tag, author, age and confidence, oldest first; encrypted ones addressed to you are decrypted. By default only yours and trusted peers'.", s.recall)
	addTool(s, srv, "post", "Store a free-text message, signed by this agent and encrypted to it (and to `to`) unless public.", s.post)
	addTool(s, srv, "show", "List stored messages, oldest first, with their signature checked; readable says whether you could decrypt one. By default only yours and trusted peers'.", s.show)
	addTool(s, srv, "whoami", "This agent's identity: public key, onion address, libp2p peer ID and age recipient.", s.whoami)
}

func (s *server) hasSeed() (bool, error) {
	_, err := os.Lstat(filepath.Join(s.dir, identity.SeedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// loadIdentity loads the seed, saying how to make one when there is none.
func (s *server) loadIdentity() (*identity.Identity, error) {
	if ok, err := s.hasSeed(); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("no identity in %s; create one with `mmogit init` (or pass the right --config-dir to `mmogit mcp`)", s.dir)
	}
	return identity.Load(s.dir)
}

func checkText(text string) error {
	switch {
	case text == "":
		return usagef("text is empty")
	case len(text) > memory.MaxContentBytes:
		return usagef("text is %d bytes; the limit is %d", len(text), memory.MaxContentBytes)
	}
	return nil
}

func checkList(name string, l []string) error {
	if len(l) > maxListItems {
		return usagef("%s has %d items; at most %d", name, len(l), maxListItems)
	}
	for _, v := range l {
		if len(v) > maxShortField {
			return usagef("%s: an item is %d bytes; at most %d", name, len(v), maxShortField)
		}
	}
	return nil
}

func checkShort(name, v string) error {
	if len(v) > maxShortField {
		return usagef("%s is %d bytes; at most %d", name, len(v), maxShortField)
	}
	return nil
}

func checkLimit(n int) (int, error) {
	switch {
	case n < 0:
		return 0, usagef("limit %d is negative", n)
	case n == 0:
		return defaultLimit, nil
	case n > maxLimit:
		return 0, usagef("limit %d is over %d", n, maxLimit)
	}
	return n, nil
}

func (s *server) remember(ctx context.Context, in rememberIn) (messageOut, error) {
	if err := checkText(in.Text); err != nil {
		return messageOut{}, err
	}
	if err := checkList("tags", in.Tags); err != nil {
		return messageOut{}, err
	}
	if err := checkShort("type", in.Type); err != nil {
		return messageOut{}, err
	}
	typ := in.Type
	if typ == "" {
		typ = "observation"
	}
	mem, err := memory.NewMemory(typ, in.Text, in.Tags, in.Confidence)
	if err != nil {
		return messageOut{}, usagef("%w", err)
	}
	body, err := mem.JSON()
	if err != nil {
		return messageOut{}, err
	}
	return s.write(ctx, body, in.To, in.Public)
}

func (s *server) post(ctx context.Context, in postIn) (messageOut, error) {
	if err := checkText(in.Text); err != nil {
		return messageOut{}, err
	}
	return s.write(ctx, in.Text, in.To, in.Public)
}

// write signs content and commits it, sealed to us and to unless public,
// as `mmogit post` does.
func (s *server) write(ctx context.Context, content string, to []string, public bool) (messageOut, error) {
	if err := checkList("to", to); err != nil {
		return messageOut{}, err
	}
	if public && len(to) > 0 {
		return messageOut{}, usagef("public and to contradict each other: to encrypts the message")
	}
	var peers []ed25519.PublicKey
	for _, p := range to {
		pub, err := identity.ParsePeerKey(p)
		if err != nil {
			return messageOut{}, usagef("to: %w", err)
		}
		peers = append(peers, pub)
	}
	id, err := s.loadIdentity()
	if err != nil {
		return messageOut{}, err
	}
	st, err := s.openStore(true)
	if err != nil {
		return messageOut{}, err
	}
	var others []ed25519.PublicKey // the recipients other than us, once each
	seen := map[string]bool{string(id.Public): true}
	for _, p := range peers {
		if !seen[string(p)] {
			seen[string(p)] = true
			others = append(others, p)
		}
	}
	stored := content
	var recips []string
	if !public {
		all := append([]ed25519.PublicKey{id.Public}, others...)
		if stored, err = seal.Seal(content, all); err != nil {
			return messageOut{}, err
		}
		for _, k := range all {
			recips = append(recips, hex.EncodeToString(k))
		}
	}
	m, err := st.Post(ctx, id.Private, stored)
	if err != nil {
		return messageOut{}, err
	}
	if len(others) > 0 {
		// The agent shares a message only with the peers recorded here.
		if err := seal.AddToIndex(s.dir, m.ID(), recips[1:]); err != nil {
			return messageOut{}, fmt.Errorf("posted %s but could not record its recipients, so it will not be sent to them: %w", m.ID(), err)
		}
	}
	out := messageOut{Message: m, ID: m.ID(), Branch: id.Branch(), Valid: true, Encrypted: !public, Readable: true, Recipients: recips}
	if !public {
		out.Content, out.Sealed = content, stored
	}
	s.log.Info("stored", "id", out.ID, "encrypted", out.Encrypted, "recipients", len(recips))
	return out, nil
}

// reader decrypts what this identity can; a nil key reads plain content.
type reader struct{ priv ed25519.PrivateKey }

func (s *server) newReader() (reader, error) {
	if ok, err := s.hasSeed(); err != nil || !ok {
		return reader{}, err
	}
	id, err := identity.Load(s.dir)
	if err != nil {
		return reader{}, err
	}
	return reader{priv: id.Private}, nil
}

// open returns the content to show for stored content c: its plaintext
// when readable, else c.
func (r reader) open(c string) (text string, encrypted, readable bool) {
	text, encrypted, readable, _ = seal.Reveal(c, r.priv)
	return text, encrypted, readable
}

// newScope is whose messages are listed (see trust.Scope), as in the CLI.
func (s *server) newScope(all bool, author string) (trust.Scope, error) {
	if err := checkShort("author", author); err != nil {
		return trust.Scope{}, err
	}
	self := ""
	if ok, err := s.hasSeed(); err != nil {
		return trust.Scope{}, err
	} else if ok {
		id, err := identity.Load(s.dir)
		if err != nil {
			return trust.Scope{}, err
		}
		self = id.PubHex()
	}
	l, err := trust.Load(s.dir)
	if err != nil {
		return trust.Scope{}, err
	}
	sc, err := trust.NewScope(self, l, all, author)
	if err != nil {
		return sc, usagef("author: %w", err)
	}
	return sc, nil
}

func (s *server) recall(ctx context.Context, in recallIn) (recallOut, error) {
	out := recallOut{Memories: []recalledOut{}}
	limit, err := checkLimit(in.Limit)
	if err != nil {
		return out, err
	}
	if err := checkShort("type", in.Type); err != nil {
		return out, err
	}
	if err := checkShort("tag", in.Tag); err != nil {
		return out, err
	}
	if in.Hours < 0 {
		return out, usagef("hours %v is negative", in.Hours)
	}
	if in.Type != "" {
		if _, err := memory.ParseType(in.Type); err != nil {
			return out, usagef("%w", err)
		}
	}
	sc, err := s.newScope(in.All, in.Author)
	if err != nil {
		return out, err
	}
	rd, err := s.newReader()
	if err != nil {
		return out, err
	}
	st, err := s.openStore(false)
	if err != nil || st == nil {
		return out, err
	}
	f := memory.Filter{Type: in.Type, Tag: in.Tag, MinConfidence: in.Confidence, Author: sc.Author, Authors: sc.Authors(),
		Open: func(m memory.Message) (string, bool) {
			text, _, readable := rd.open(m.Content)
			return text, readable
		}, Identity: rd.priv}
	if in.Hours > 0 {
		f.Since = time.Now().Add(-time.Duration(in.Hours * float64(time.Hour)))
	}
	rs, err := st.Recall(ctx, f)
	if err != nil {
		return out, err
	}
	if len(rs) > limit {
		rs = rs[len(rs)-limit:]
	}
	for _, r := range rs {
		out.Memories = append(out.Memories, recalledOut{MessageID: r.MessageID, Author: r.Message.Author, AuthorLabel: sc.Label(r.Message.Author),
			Memory: r.Memory, Encrypted: seal.IsSealed(r.Message.Content), Readable: true})
	}
	return out, nil
}

func (s *server) show(ctx context.Context, in showIn) (showOut, error) {
	out := showOut{Messages: []messageOut{}}
	limit, err := checkLimit(in.Limit)
	if err != nil {
		return out, err
	}
	msgs, hidden, err := s.messages(ctx, in.All, in.Author, limit)
	if err != nil {
		return out, err
	}
	out.Messages, out.Hidden = msgs, hidden
	return out, nil
}

// messages returns the newest limit messages in scope, oldest first, and
// how many were left out of scope.
func (s *server) messages(ctx context.Context, all bool, author string, limit int) ([]messageOut, int, error) {
	sc, err := s.newScope(all, author)
	if err != nil {
		return nil, 0, err
	}
	rd, err := s.newReader()
	if err != nil {
		return nil, 0, err
	}
	st, err := s.openStore(false)
	if err != nil || st == nil {
		return []messageOut{}, 0, err
	}
	entries, err := st.All(ctx)
	if err != nil {
		return nil, 0, err
	}
	entries = memory.OpenEnvelopes(entries, rd.priv)
	var kept []memory.Entry
	hidden := 0
	seen := map[string]bool{}
	for _, e := range entries {
		if e.ID != "" && seen[e.ID] {
			continue // the reference copies plain files onto its -encrypted branch
		}
		seen[e.ID] = true
		if !sc.Allowed(e.Message.Author) {
			hidden++
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) > limit {
		kept = kept[len(kept)-limit:]
	}
	outs := make([]messageOut, 0, len(kept))
	for _, e := range kept {
		outs = append(outs, messageOutFor(e, rd, sc))
	}
	return outs, hidden, nil
}

func messageOutFor(e memory.Entry, rd reader, sc trust.Scope) messageOut {
	o := messageOut{Message: e.Message, ID: e.ID, Branch: e.Branch, Valid: e.Valid, AuthorLabel: sc.Label(e.Message.Author), RefEnvelope: e.Envelope != nil}
	if e.Envelope != nil && !e.Opened {
		o.Encrypted, o.Unverifiable, o.AuthorLabel = true, true, ""
		return o
	}
	if e.Err != nil {
		o.Error = e.Err.Error()
	}
	text, enc, readable := rd.open(e.Message.Content)
	o.Encrypted, o.Readable = enc || e.Envelope != nil, readable
	if enc && readable {
		o.Content, o.Sealed = text, e.Message.Content
	}
	return o
}

func (s *server) whoami(_ context.Context, _ struct{}) (whoamiOut, error) {
	id, err := s.loadIdentity()
	if err != nil {
		return whoamiOut{}, err
	}
	rec, err := seal.RecipientString(id.Public)
	if err != nil {
		return whoamiOut{}, err
	}
	return whoamiOut{Pubkey: id.PubHex(), OnionAddress: id.OnionAddress(), PeerID: id.PeerID().String(), AgeRecipient: rec}, nil
}
