package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/spf13/cobra"
)

// publicNote is appended to the help of every command that writes memories.
const publicNote = `
Messages are signed, not encrypted: every peer you sync with can read them.`

func openStore() (*identity.Identity, *memory.Store, error) {
	id, err := identity.Load(g.configDir)
	if err != nil {
		return nil, nil, err
	}
	st, err := memory.Open(filepath.Join(g.configDir, "messages"))
	if err != nil {
		return nil, nil, err
	}
	return id, st, nil
}

// messageOut is the JSON form of a stored message.
type messageOut struct {
	memory.Message
	ID     string `json:"id"`
	Branch string `json:"branch,omitempty"`
	Valid  bool   `json:"valid"`
	Error  string `json:"error,omitempty"`
}

func newPostCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "post TEXT",
		Short: "Sign a message and commit it to your branch of the memory repository",
		Long:  "Sign TEXT with this identity and commit it as one file on branch users/<first 8 hex of your key> of <config-dir>/messages." + publicNote,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return post(cmd.Context(), args[0])
		},
	}
}

func post(ctx context.Context, content string) error {
	id, st, err := openStore()
	if err != nil {
		return err
	}
	m, err := st.Post(ctx, id.Private, content)
	if err != nil {
		return err
	}
	out := messageOut{Message: m, ID: m.ID(), Branch: id.Branch(), Valid: true}
	return g.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "posted %s on %s at %s\n", memory.ShortID(out.ID), out.Branch, m.Timestamp)
	})
}

func newShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Show every message on every users/* branch, oldest first, with its signature checked",
		Long:  "Show every message in the memory repository, oldest first. Each is marked valid or INVALID after checking its signature against its author; a message edited after signing shows as INVALID." + publicNote,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := memory.Open(filepath.Join(g.configDir, "messages"))
			if err != nil {
				return err
			}
			entries, err := st.All(cmd.Context())
			if err != nil {
				return err
			}
			outs := make([]messageOut, 0, len(entries))
			for _, e := range entries {
				o := messageOut{Message: e.Message, ID: e.ID, Branch: e.Branch, Valid: e.Valid}
				if e.Err != nil {
					o.Error = e.Err.Error()
				}
				outs = append(outs, o)
			}
			return g.emit(outs, func(w io.Writer) {
				if len(outs) == 0 {
					fmt.Fprintln(w, "no messages yet; post one with `mmogit post \"hello\"`")
				}
				for _, o := range outs {
					mark := "valid"
					if !o.Valid {
						mark = "INVALID (" + o.Error + ")"
					}
					author := o.Author
					if len(author) > 8 {
						author = author[:8]
					}
					fmt.Fprintf(w, "[%s] %s %s: %s\n", mark, o.Timestamp, author, o.Content)
				}
			})
		},
	}
}

// rememberArgs are the flags of `mmogit remember`.
type rememberArgs struct {
	typ        string   // -t: memory type
	tags       []string // --tags a,b
	confidence float64  // --confidence 0..1 (observations)
}

func newRememberCmd() *cobra.Command {
	var a rememberArgs
	cmd := &cobra.Command{
		Use:   "remember -t TYPE TEXT",
		Short: "Post a structured memory (observation, learning, relationship, task, experience, reflection, question)",
		Long:  "Post a structured memory: a JSON object as the content of a signed message, found later with `mmogit recall`." + publicNote,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mem, err := memory.NewMemory(a.typ, args[0], a.tags, a.confidence)
			if err != nil {
				return err
			}
			body, err := mem.JSON()
			if err != nil {
				return err
			}
			return post(cmd.Context(), body)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&a.typ, "type", "t", "observation", "memory type: observation|learning|relationship|task|experience|reflection|question")
	f.StringSliceVar(&a.tags, "tags", nil, "comma-separated tags")
	f.Float64Var(&a.confidence, "confidence", 0, "confidence between 0 and 1")
	return cmd
}

// recallArgs are the flags of `mmogit recall`.
type recallArgs struct {
	typ        string  // -t: only this type
	tag        string  // --tag: only memories with this tag
	hours      float64 // --hours: only memories from the last N hours
	confidence float64 // --confidence: minimum confidence
	author     string  // --author: key hex or prefix
}

// recalledOut is the JSON form of a recalled memory.
type recalledOut struct {
	MessageID string        `json:"message_id"`
	Author    string        `json:"author"`
	Memory    memory.Memory `json:"memory"`
}

func newRecallCmd() *cobra.Command {
	var a recallArgs
	cmd := &cobra.Command{
		Use:   "recall",
		Short: "Find structured memories by type, tag, age and confidence",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := memory.Open(filepath.Join(g.configDir, "messages"))
			if err != nil {
				return err
			}
			f := memory.Filter{Type: a.typ, Tag: a.tag, MinConfidence: a.confidence, Author: a.author}
			if a.hours > 0 {
				f.Since = time.Now().Add(-time.Duration(a.hours * float64(time.Hour)))
			}
			rs, err := st.Recall(cmd.Context(), f)
			if err != nil {
				return err
			}
			outs := make([]recalledOut, 0, len(rs))
			for _, r := range rs {
				outs = append(outs, recalledOut{MessageID: r.MessageID, Author: r.Message.Author, Memory: r.Memory})
			}
			return g.emit(outs, func(w io.Writer) {
				if len(outs) == 0 {
					fmt.Fprintln(w, "no memories match")
				}
				for _, o := range outs {
					fmt.Fprintf(w, "%s %-12s %s", o.Memory.CreatedAt.Format(time.RFC3339), o.Memory.Memory.Type, summary(o.Memory))
					if len(o.Memory.Tags) > 0 {
						fmt.Fprintf(w, " [%s]", strings.Join(o.Memory.Tags, ","))
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
	f.Float64Var(&a.confidence, "confidence", 0, "minimum confidence")
	f.StringVar(&a.author, "author", "", "only memories by this author (hex key or prefix)")
	return cmd
}

func summary(m memory.Memory) string { return m.Memory.Text() }
