package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/spf13/cobra"
)

// publicNote is appended to the help of every command that writes memories.
const publicNote = `

Content is encrypted by default (age, X25519 from your identity key) to
yourself and to every --to recipient: peers you sync with can check who
signed it, but only its recipients can read it. Recipients are not written
into the message; they are kept in <config-dir>/recipients.json. --public
stores the content in clear, readable by every peer it reaches.`

// readNote is appended to the help of every command that reads memories.
const readNote = `

Encrypted messages addressed to this identity are decrypted; the others show
as "` + markNotForYou + `" (in --json: "encrypted": true, "readable": false,
and content holds the ciphertext exactly as signed).`

// Markers shown instead of content this identity cannot read.
const (
	markNotForYou = seal.MarkNotForYou
	// markRefEnvelope: a reference mmogit envelope sealed by another
	// identity (or by this one with a seed not held here).
	markRefEnvelope = "[encrypted: reference mmogit envelope, readable only by its author]"
)

// openStore opens the memory repository for writing. A repository still
// in the old fan-out layout is first migrated in place to the flat one the
// reference mmogit reads (memory.Store.Migrate: atomic per branch, under
// the repository lock; a no-op once done).
func openStore(ctx context.Context) (*identity.Identity, *memory.Store, error) {
	id, err := identity.Load(g.configDir)
	if err != nil {
		return nil, nil, err
	}
	st, err := memory.Open(filepath.Join(g.configDir, "messages"))
	if err != nil {
		return nil, nil, err
	}
	res, err := st.Migrate(ctx)
	if err != nil {
		return nil, nil, err
	}
	if res.Moved > 0 {
		g.log.Info("moved memories to the flat layout the reference mmogit reads", "moved", res.Moved, "branches", res.Branches, "left_in_place", res.Kept)
	}
	return id, st, nil
}

// openExistingStore opens the memory repository for reading without
// creating anything: ok is false when there is none yet (the config dir has
// an identity but nothing was posted or synced), and a config dir with
// neither an identity nor a repository is an error suggesting init.
func openExistingStore() (st *memory.Store, ok bool, err error) {
	dir := filepath.Join(g.configDir, "messages")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Lstat(filepath.Join(g.configDir, identity.SeedFile)); errors.Is(err, fs.ErrNotExist) {
			return nil, false, fmt.Errorf("no identity and no memory repository in %s yet; create them with `mmogit init` (or pass the right --config-dir)", g.configDir)
		}
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	st, err = memory.Open(dir)
	return st, err == nil, err
}

// printable escapes what a terminal would interpret in text that came from
// a message (any peer's): line breaks, tabs, ESC and every other C0/C1
// control, invisible format characters such as bidi overrides, invalid
// UTF-8, and the backslash itself, so that one message is one line that
// shows exactly what it holds. JSON output is never escaped this way.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

// messageOut is the JSON form of a stored message. Content is the
// plaintext when the message is encrypted and readable here; otherwise it
// is the content as stored (for an unreadable message, the ciphertext).
type messageOut struct {
	memory.Message
	ID        string `json:"id"`
	Branch    string `json:"branch,omitempty"`
	Valid     bool   `json:"valid"`
	Error     string `json:"error,omitempty"`
	Encrypted bool   `json:"encrypted"`
	Readable  bool   `json:"readable"`
	// AuthorLabel is the author's trusted alias, or its whole key.
	AuthorLabel string `json:"author_label,omitempty"`
	// Sealed is the content as stored and signed, when Content shows its
	// plaintext instead: the signature verifies over Sealed.
	Sealed string `json:"sealed,omitempty"`
	// Recipients (post only) are the keys that can read the message, the
	// author first. They are not stored in the message.
	Recipients []string `json:"recipients,omitempty"`
	// RefEnvelope: stored in a reference mmogit encrypted envelope
	// (XChaCha20-Poly1305 keyed by its author's seed; see package
	// refenvelope). Readable, and so verifiable, only by that author.
	RefEnvelope bool `json:"ref_envelope,omitempty"`
	// Unverifiable: a reference envelope this identity cannot open. It has
	// no outer signature, so its author is unknown and valid is false
	// without it being a forgery (error is empty).
	Unverifiable bool `json:"unverifiable,omitempty"`
	// unreadable is the marker humans see instead of Content.
	unreadable string
}

// postArgs are the encryption flags of post and remember.
type postArgs struct {
	public bool     // --public: store the content in clear
	to     []string // --to: extra recipients (key, onion address or peer ID)
}

func addPostFlags(cmd *cobra.Command, a *postArgs) {
	f := cmd.Flags()
	f.BoolVar(&a.public, "public", false, "do not encrypt: every peer that receives the message can read it")
	f.StringArrayVar(&a.to, "to", nil, "also encrypt to this agent (64-hex key, onion address or peer ID; repeatable)")
}

func newPostCmd() *cobra.Command {
	var a postArgs
	cmd := &cobra.Command{
		Use:   "post TEXT",
		Short: "Sign a message (encrypted unless --public) and commit it to your branch of the memory repository",
		Long:  "Sign TEXT with this identity and commit it as one file on branch users/<first 8 hex of your key> of <config-dir>/messages." + publicNote,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(cmd.Context(), args[0], a)
		},
	}
	addPostFlags(cmd, &a)
	return cmd
}

// peers parses --to, refusing it with --public.
func (a postArgs) peers() ([]ed25519.PublicKey, error) {
	if a.public && len(a.to) > 0 {
		return nil, &usageError{errors.New("--public and --to contradict each other: --to encrypts the message")}
	}
	var out []ed25519.PublicKey
	for _, s := range a.to {
		pub, err := identity.ParsePeerKey(s)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--to: %w", err)}
		}
		out = append(out, pub)
	}
	return out, nil
}

func post(ctx context.Context, content string, a postArgs) error {
	peers, err := a.peers() // before touching the store
	if err != nil {
		return err
	}
	id, st, err := openStore(ctx)
	if err != nil {
		return err
	}
	// The recipients other than us, once each.
	var others []ed25519.PublicKey
	seen := map[string]bool{string(id.Public): true}
	for _, p := range peers {
		if !seen[string(p)] {
			seen[string(p)] = true
			others = append(others, p)
		}
	}
	stored := content
	var recips []string
	if !a.public {
		to := append([]ed25519.PublicKey{id.Public}, others...)
		if stored, err = seal.Seal(content, to); err != nil {
			return err
		}
		for _, k := range to {
			recips = append(recips, hex.EncodeToString(k))
		}
	}
	m, err := st.Post(ctx, id.Private, stored)
	if err != nil {
		return err
	}
	if len(others) > 0 {
		// The agent shares a message only with peers listed here, so a
		// missing entry withholds it from them: say so, loudly.
		if err := seal.AddToIndex(g.configDir, m.ID(), recips[1:]); err != nil {
			return fmt.Errorf("posted %s but could not record its recipients, so it will not be sent to them: %w", m.ID(), err)
		}
	}
	out := messageOut{Message: m, ID: m.ID(), Branch: id.Branch(), Valid: true, Encrypted: !a.public, Readable: true, Recipients: recips}
	if !a.public {
		out.Content, out.Sealed = content, stored
	}
	return g.emit(out, func(w io.Writer) {
		how := "public"
		if out.Encrypted {
			how = "encrypted to you"
			if n := len(others); n > 0 {
				how += fmt.Sprintf(" and %d other(s)", n)
			}
		}
		fmt.Fprintf(w, "posted %s (%s) on %s at %s\n", memory.ShortID(out.ID), how, out.Branch, m.Timestamp)
	})
}

// reader decrypts what this identity can. A nil key reads only plain
// content.
type reader struct{ priv ed25519.PrivateKey }

// newReader loads the identity for reading. A config dir without a seed
// (only a synced repository) still shows plain messages.
func newReader() (reader, error) {
	if _, err := os.Lstat(filepath.Join(g.configDir, identity.SeedFile)); errors.Is(err, fs.ErrNotExist) {
		return reader{}, nil
	}
	id, err := identity.Load(g.configDir)
	if err != nil {
		return reader{}, err
	}
	return reader{priv: id.Private}, nil
}

// open returns the content to show for stored content c: its plaintext
// when readable, with a marker for humans when not.
func (r reader) open(c string) (text string, encrypted, readable bool, marker string) {
	return seal.Reveal(c, r.priv)
}

// recallOpen is the memory.Filter.Open hook: plain content as is, sealed
// content decrypted when addressed to us, skipped otherwise.
func (r reader) recallOpen(m memory.Message) (string, bool) {
	text, _, readable, _ := r.open(m.Content)
	return text, readable
}

func newShowCmd() *cobra.Command {
	var all bool
	var author string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show every message on every users/* branch, oldest first, with its signature checked",
		Long:  "Show every message in the memory repository, oldest first. Each is marked valid or INVALID after checking its signature against its author; a message edited after signing shows as INVALID. The signature covers the encrypted form, so it is checked whether or not you can read the message." + readNote,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok, err := openExistingStore()
			if err != nil {
				return err
			}
			rd, err := newReader()
			if err != nil {
				return err
			}
			sc, err := newScope(all, author)
			if err != nil {
				return err
			}
			var entries []memory.Entry
			if ok {
				if entries, err = st.All(cmd.Context()); err != nil {
					return err
				}
			}
			entries = memory.OpenEnvelopes(entries, rd.priv)
			outs := make([]messageOut, 0, len(entries))
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
				o := messageOut{Message: e.Message, ID: e.ID, Branch: e.Branch, Valid: e.Valid, AuthorLabel: sc.Label(e.Message.Author)}
				if e.Envelope != nil {
					o.RefEnvelope = true
				}
				if e.Envelope != nil && !e.Opened {
					// Another identity's envelope: unreadable, and with no
					// outer signature nothing can say who wrote it, so it
					// is neither valid nor a forgery.
					o.Encrypted, o.Unverifiable, o.unreadable = true, true, markRefEnvelope
					o.AuthorLabel = ""
					outs = append(outs, o)
					continue
				}
				if e.Err != nil {
					o.Error = e.Err.Error()
				}
				// An invalid message is decrypted too (the mark says it is
				// invalid); its plaintext is no more trusted than its text.
				text, enc, readable, marker := rd.open(e.Message.Content)
				o.Encrypted, o.Readable, o.unreadable = enc || e.Envelope != nil, readable, marker
				if enc && readable {
					o.Content, o.Sealed = text, e.Message.Content
				}
				outs = append(outs, o)
			}
			hiddenNote(hidden)
			return g.emit(outs, func(w io.Writer) {
				if len(outs) == 0 && hidden == 0 {
					fmt.Fprintln(w, "no messages yet; post one with `mmogit post \"hello\"`")
				}
				for _, o := range outs {
					mark := "valid"
					switch {
					case o.Unverifiable:
						mark = "unverifiable"
					case !o.Valid:
						mark = "INVALID (" + printable(o.Error) + ")"
					}
					label := o.AuthorLabel
					if label == "" {
						label = o.Branch
					}
					content := printable(o.Content)
					if !o.Readable {
						content = o.unreadable
					} else if o.Encrypted {
						mark += ", encrypted"
					}
					// The whole key: a prefix is cheap to grind.
					fmt.Fprintf(w, "[%s] %s %s: %s\n", mark, printable(o.Timestamp), printable(label), content)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "show every message held, not only yours and trusted peers'")
	cmd.Flags().StringVar(&author, "author", "", "only this author: whole 64-hex key, onion address, peer ID or trusted alias")
	return cmd
}

// rememberArgs are the flags of `mmogit remember`.
type rememberArgs struct {
	typ        string   // -t: memory type
	tags       []string // --tags a,b
	confidence float64  // --confidence 0..1 (observations)
}

func newRememberCmd() *cobra.Command {
	var a rememberArgs
	var pa postArgs
	cmd := &cobra.Command{
		Use:   "remember -t TYPE TEXT",
		Short: "Post a structured memory (observation, learning, relationship, task, experience, reflection, question)",
		Long: "Post a structured memory: a JSON object as the content of a signed message, found later with `mmogit recall`.\n\n" +
			"The fields are the reference mmogit's, so its agents can read these memories: TEXT goes in the type's main field (observation: insight, learning: lesson, relationship: context, task and experience: description, reflection: observation, question: query) and the first tag, if any, in its subject (observation: subject, learning: topic, relationship: identity; \"general\" without tags). The rest get the reference's starting values (a task NotStarted, a question of Medium priority, a Minor reflection).\n\n" +
			"--confidence is stored only when given (any type). An observation without it gets 0.5, as in the reference mmogit, whose schema requires a confidence on observations; other types then carry none." + publicNote,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var conf *float64 // only a given --confidence is stored
			if cmd.Flags().Changed("confidence") {
				conf = &a.confidence
			}
			mem, err := memory.NewMemory(a.typ, args[0], a.tags, conf)
			if err != nil {
				return err
			}
			body, err := mem.JSON()
			if err != nil {
				return err
			}
			return post(cmd.Context(), body, pa)
		},
	}
	addPostFlags(cmd, &pa)
	f := cmd.Flags()
	f.StringVarP(&a.typ, "type", "t", "observation", "memory type: observation|learning|relationship|task|experience|reflection|question")
	f.StringSliceVar(&a.tags, "tags", nil, "comma-separated tags")
	f.Float64Var(&a.confidence, "confidence", 0, "confidence between 0 and 1 (stored only when given; observations default to 0.5)")
	return cmd
}

// recallArgs are the flags of `mmogit recall`.
type recallArgs struct {
	typ        string  // -t: only this type
	tag        string  // --tag: only memories with this tag
	hours      float64 // --hours: only memories from the last N hours
	confidence float64 // --confidence: minimum confidence
	author     string  // --author: whole key, onion address, peer ID or alias
	all        bool    // --all: every author held
}

// recalledOut is the JSON form of a recalled memory. Recall lists only
// memories it can read (an encrypted one must be decrypted to match type,
// tag or age), so readable is always true; encrypted says whether the
// memory was stored encrypted.
type recalledOut struct {
	MessageID   string        `json:"message_id"`
	Author      string        `json:"author"`
	AuthorLabel string        `json:"author_label"` // trusted alias or the whole key
	Memory      memory.Memory `json:"memory"`
	Encrypted   bool          `json:"encrypted"`
	Readable    bool          `json:"readable"`
	RefEnvelope bool          `json:"ref_envelope,omitempty"` // stored in a reference mmogit envelope
}

func newRecallCmd() *cobra.Command {
	var a recallArgs
	cmd := &cobra.Command{
		Use:   "recall",
		Short: "Find structured memories by type, tag, age and confidence",
		Long: `Find structured memories in validly signed messages (yours and your peers'), oldest first.

--confidence X hides memories whose stated confidence is below X; memories
that state no confidence (remembered without --confidence, and most types
from the reference mmogit) are kept. Combine with -t observation to see only
rated observations.

Encrypted memories addressed to this identity are decrypted and searched like
the others; encrypted memories addressed to others are not listed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, ok, err := openExistingStore()
			if err != nil {
				return err
			}
			rd, err := newReader()
			if err != nil {
				return err
			}
			sc, err := newScope(a.all, a.author)
			if err != nil {
				return err
			}
			f := memory.Filter{Type: a.typ, Tag: a.tag, MinConfidence: a.confidence, Author: sc.Author, Authors: sc.Authors(), Open: rd.recallOpen, Identity: rd.priv}
			if a.hours > 0 {
				f.Since = time.Now().Add(-time.Duration(a.hours * float64(time.Hour)))
			}
			var rs []memory.Recalled
			if ok {
				if rs, err = st.Recall(cmd.Context(), f); err != nil {
					return err
				}
			} else if f.Type != "" { // still report a bad -t
				if _, err := memory.ParseType(f.Type); err != nil {
					return err
				}
			}
			outs := make([]recalledOut, 0, len(rs))
			for _, r := range rs {
				outs = append(outs, recalledOut{MessageID: r.MessageID, Author: r.Message.Author, AuthorLabel: sc.Label(r.Message.Author), Memory: r.Memory,
					Encrypted: r.Envelope || seal.IsSealed(r.Message.Content), Readable: true, RefEnvelope: r.Envelope})
			}
			return g.emit(outs, func(w io.Writer) {
				if len(outs) == 0 {
					fmt.Fprintln(w, "no memories match")
				}
				for _, o := range outs {
					// The author's trusted alias or whole key: a prefix
					// is cheap to grind.
					fmt.Fprintf(w, "%s %-12s %s %s", o.Memory.CreatedAt.Format(time.RFC3339), o.Memory.Memory.Type,
						printable(o.AuthorLabel), printable(summary(o.Memory)))
					if len(o.Memory.Tags) > 0 {
						fmt.Fprintf(w, " [%s]", printable(strings.Join(o.Memory.Tags, ",")))
					}
					fmt.Fprintln(w)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&a.typ, "type", "t", "", "only this memory type")
	f.StringVar(&a.tag, "tag", "", "only memories with this tag")
	f.Float64Var(&a.hours, "hours", 0, "only memories from the last N hours")
	f.Float64Var(&a.confidence, "confidence", 0, "hide memories whose stated confidence is below this (memories without one are kept)")
	f.StringVar(&a.author, "author", "", "only this author: whole 64-hex key, onion address, peer ID or trusted alias")
	f.BoolVar(&a.all, "all", false, "search every author held, not only you and trusted peers")
	return cmd
}

func summary(m memory.Memory) string { return m.Memory.Text() }
