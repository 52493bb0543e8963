package memory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	gitmem "github.com/go-git/go-git/v5/storage/memory"
)

// MigrateResult says what [Store.Migrate] did.
type MigrateResult struct {
	Branches int // branches given a migration commit
	Moved    int // message files moved to the root of their branch
	Merged   int // fan-out files whose message was already at the root (same bytes)
	Kept     int // files left where they were: not a message, or a different file already at the root name
}

// Migrate moves every message file of the fan-out layout (<id[:2]>/<id>.json)
// to the root of its branch's tree under [FileName], so the reference mmogit,
// which reads only root-level files, sees them.
//
// It runs under the repository lock. Each branch gets one commit that holds
// exactly the same blobs as before (only trees change), written and fsynced
// before the branch ref is renamed over: a crash leaves each branch either
// before or after, and both layouts are read, so nothing is lost and running
// Migrate again finishes the job. Files that are not messages (or whose root
// name is taken by a different file) stay where they are. A repository with
// nothing to move is not written to.
func (s *Store) Migrate(ctx context.Context) (MigrateResult, error) {
	var res MigrateResult
	unlock, err := s.lockRepo(ctx)
	if err != nil {
		return res, err
	}
	defer unlock()
	s.swept.Do(s.removeStaleRefTemps)
	s.mu.Lock()
	defer s.mu.Unlock()
	refs, err := s.branchRefsLocked()
	if err != nil {
		return res, err
	}
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("memory: migrate: %w", err)
		}
		err := s.migrateBranchLocked(r, &res)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			s.reindexLocked()
			err = s.migrateBranchLocked(r, &res)
		}
		if err != nil {
			return res, fmt.Errorf("memory: migrate %s: %w", r.Name().Short(), err)
		}
	}
	return res, nil
}

func (s *Store) migrateBranchLocked(r *plumbing.Reference, res *MigrateResult) error {
	c, err := object.GetCommit(s.st, r.Hash())
	if err != nil {
		return err
	}
	root, err := object.GetTree(s.st, c.TreeHash)
	if err != nil {
		return err
	}
	hasDir := false
	for _, e := range root.Entries {
		if e.Mode == filemode.Dir {
			hasDir = true
			break
		}
	}
	if !hasDir {
		return nil
	}
	w := &objectWriter{st: gitmem.NewStorage(), gitDir: s.gitDir}
	var (
		out     []object.TreeEntry // new root
		atRoot  = map[string]plumbing.Hash{}
		subdirs []object.TreeEntry
		moved   int
		merged  int
		kept    int
	)
	for _, e := range root.Entries {
		if e.Mode == filemode.Dir {
			subdirs = append(subdirs, e)
			continue
		}
		out = append(out, e)
		atRoot[e.Name] = e.Hash
	}
	for _, d := range subdirs {
		sub, err := object.GetTree(s.st, d.Hash)
		if err != nil {
			return err
		}
		var left []object.TreeEntry // what stays in this directory
		for _, e := range sub.Entries {
			if !e.Mode.IsFile() {
				left = append(left, e) // deeper trees: never written by mmogit, kept as is
				continue
			}
			p, err := s.parseBlobLocked(e.Hash)
			if err != nil {
				return fmt.Errorf("read %s/%s: %w", d.Name, e.Name, err)
			}
			if errors.Is(p.err, ErrMalformed) {
				left = append(left, e)
				kept++
				continue
			}
			name := FileName(p.msg)
			switch h, taken := atRoot[name]; {
			case !taken:
				atRoot[name] = e.Hash
				out = append(out, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: e.Hash})
				moved++
			case h == e.Hash:
				merged++
			default:
				left = append(left, e)
				kept++
			}
		}
		if len(left) == 0 {
			continue
		}
		if len(left) == len(sub.Entries) {
			out = append(out, d) // untouched directory: same tree object
			continue
		}
		sortEntries(left)
		h, err := w.put(plumbing.TreeObject, &object.Tree{Entries: left}, nil)
		if err != nil {
			return err
		}
		out = append(out, object.TreeEntry{Name: d.Name, Mode: filemode.Dir, Hash: h})
	}
	if moved == 0 && merged == 0 {
		res.Kept += kept
		return nil
	}
	sortEntries(out)
	tree, err := w.put(plumbing.TreeObject, &object.Tree{Entries: out}, nil)
	if err != nil {
		return err
	}
	branch := r.Name().Short()
	short := strings.TrimPrefix(branch, BranchPrefix)
	sig := object.Signature{Name: short, Email: short + "@mmogit", When: time.Now()}
	msg := fmt.Sprintf("migrate %d memories to the flat layout the reference mmogit reads\n", moved)
	cm := &object.Commit{Author: sig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: []plumbing.Hash{c.Hash}}
	ch, err := w.put(plumbing.CommitObject, cm, nil)
	if err != nil {
		return err
	}
	// The new trees are few but the root one can be megabytes: one pack.
	if err := writePack(s.st, w); err != nil {
		return err
	}
	if err := s.writeRef(r.Name(), ch); err != nil {
		return err
	}
	delete(s.branches, branch)
	res.Branches++
	res.Moved += moved
	res.Merged += merged
	res.Kept += kept
	return nil
}
