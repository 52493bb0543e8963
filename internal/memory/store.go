package memory

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	gitmem "github.com/go-git/go-git/v5/storage/memory"

	"github.com/mmogit/mmogit/internal/refenvelope"
)

// BranchPrefix is the prefix of every author branch.
const BranchPrefix = "users/"

// maxErrors bounds AddResult.Errors so a flood of forgeries cannot grow it
// without limit; Rejected still counts all of them.
const maxErrors = 100

// Store is a git repository of signed messages. Its methods are safe for
// concurrent use, and several processes may use the same repository: writes
// to a branch are serialised by a lock file inside the repository.
//
// Layout: branch users/<first 8 hex of author>, one file per message at the
// root of the branch's tree, named by [FileName] (<timestamp>_<id>.json),
// one commit per Post: the layout the reference mmogit reads. Files of the
// older fan-out layout (<id[:2]>/<id>.json) are read as well, and
// [Store.Migrate] moves them to the root. Objects are written and
// fsynced before the branch ref is replaced by an atomic rename, so a crash
// leaves at worst unreferenced objects, never a branch pointing at nothing.
type Store struct {
	dir      string
	gitDir   string
	lockPath string
	writeSem chan struct{}
	swept    sync.Once // stale ref temporaries removed, under the lock

	// mu guards the go-git storage (not documented as goroutine-safe) and
	// the caches below.
	mu       sync.Mutex
	st       storage.Storer
	fanOut   bool                     // write the old layout (benchmark baseline only)
	blobs    map[plumbing.Hash]parsed // parsed blobs by content hash
	branches map[string]branchScan    // last scan per branch
	roots    map[string]rootCache     // root tree of the last commit written per branch
}

type parsed struct {
	msg Message
	err error                 // ErrMalformed, ErrEnvelope or a verification error
	env *refenvelope.Envelope // set with ErrEnvelope
}

type branchScan struct {
	commit  plumbing.Hash
	entries []Entry
}

// Entry is one file found on an author branch.
type Entry struct {
	Message Message
	ID      string // Message.ID() of the stored bytes; "" if not a message
	Branch  string // e.g. "users/d75a9801"
	Path    string // path of the file in the branch's tree
	Valid   bool
	Err     error // why it is not valid
	// Envelope is set for a reference mmogit encrypted envelope. As
	// stored, such an entry has Err ErrEnvelope, no ID and, in Message,
	// only the envelope's timestamp: nobody but its author can read or
	// verify it. [OpenEnvelopes] replaces it, for its author, by the
	// signed message inside (Envelope still set, Opened true).
	Envelope *refenvelope.Envelope
	Opened   bool
}

// AddResult reports what Add did with each message it was given.
type AddResult struct {
	Added, Duplicate, Rejected int
	// Refused counts messages not stored because of who sent them (a peer
	// without the write role, or over its quota), as opposed to Rejected
	// ones, which failed verification. Store.Add never refuses.
	Refused int
	Errors  []error // one per rejection (at most 100)
}

// Open opens the repository at dir, creating it (like git init, with a work
// tree) if it does not exist.
func Open(dir string) (*Store, error) {
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("memory: create %s: %w", dir, err)
		}
		repo, err = git.PlainInit(dir, false)
		if errors.Is(err, git.ErrRepositoryAlreadyExists) { // lost a race with another process
			repo, err = git.PlainOpen(dir)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("memory: open repository %s: %w", dir, err)
	}
	gitDir := filepath.Join(dir, ".git")
	if fi, err := os.Stat(gitDir); err != nil || !fi.IsDir() {
		gitDir = dir // bare repository
	}
	return &Store{
		dir:      dir,
		gitDir:   gitDir,
		lockPath: filepath.Join(gitDir, "mmogit.lock"),
		writeSem: make(chan struct{}, 1),
		st:       repo.Storer,
		blobs:    map[plumbing.Hash]parsed{},
		branches: map[string]branchScan{},
		roots:    map[string]rootCache{},
	}, nil
}

// Dir returns the repository directory.
func (s *Store) Dir() string { return s.dir }

// BranchFor returns the branch that holds messages by author (64 hex).
func BranchFor(author string) string {
	if len(author) > 8 {
		author = author[:8]
	}
	return BranchPrefix + author
}

// fanOutPath is where messages were stored before the flat layout: one
// directory per first two hex of the ID. It is still read (every file of a
// branch's tree is), and [Store.Migrate] moves such files to the root.
func fanOutPath(id string) string { return id[:2] + "/" + id + ".json" }

// FileName is the name of m's file at the root of its branch's tree.
//
// The reference mmogit names a post after its timestamp with ':', '-' and
// '.' replaced by '_' (src/post.rs) and reads only the root-level .json
// files of a branch (src/show.rs), so two of its posts in the same
// nanosecond overwrite each other. The name here starts the same way and
// adds the message ID, so the reference still reads every file, names
// still sort by time, and no two messages share one: the ID covers every
// byte of the message, which keeps Add's "already stored" check exact.
func FileName(m Message) string {
	ts := []byte(m.Timestamp)
	if len(ts) > 64 {
		ts = ts[:64]
	}
	for i, c := range ts {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '+':
		default: // ':', '-', '.' as the reference; anything else (a file name has no business holding it) too
			ts[i] = '_'
		}
	}
	return string(ts) + "_" + m.ID() + ".json"
}

// path is where s stores m.
func (s *Store) path(m Message) string {
	if s.fanOut {
		return fanOutPath(m.ID())
	}
	return FileName(m)
}

func encode(m Message) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Post signs content with priv, stores it and returns it.
func (s *Store) Post(ctx context.Context, priv ed25519.PrivateKey, content string) (Message, error) {
	if len(content) > MaxContentBytes {
		return Message{}, fmt.Errorf("memory: post: %w: %d bytes, limit %d", ErrTooLarge, len(content), MaxContentBytes)
	}
	if !utf8.ValidString(content) {
		// JSON would store U+FFFD for the bad bytes and the signature,
		// made over the original bytes, would no longer verify.
		return Message{}, fmt.Errorf("memory: post: %w", ErrNotUTF8)
	}
	m := Sign(priv, content, time.Now())
	data, err := encode(m)
	if err != nil {
		return Message{}, fmt.Errorf("memory: post: %w", err)
	}
	id := m.ID()
	s.rememberVerified(data, m)
	if _, err := s.commit(ctx, BranchFor(m.Author), map[string][]byte{s.path(m): data}, "memory "+id); err != nil {
		return Message{}, fmt.Errorf("memory: post: %w", err)
	}
	return m, nil
}

// rememberVerified records in the blob cache that data, about to be
// committed, holds m, which has just been verified. Without it the next
// scan after a commit reads, inflates, decodes and verifies every new blob
// again: on a 10,000-message import that was half the time of Add. The
// cache is keyed by content hash, so an entry is right whether or not the
// commit succeeds. Valid UTF-8 strings survive encode's JSON exactly;
// invalid bytes would be replaced (breaking the signature), so such a
// message is left for the scan to judge.
func (s *Store) rememberVerified(data []byte, m Message) {
	for _, f := range []string{m.Content, m.Author, m.Timestamp, m.Signature} {
		if !utf8.ValidString(f) {
			return
		}
	}
	h := plumbing.ComputeHash(plumbing.BlobObject, data)
	s.mu.Lock()
	s.blobs[h] = parsed{msg: m}
	s.mu.Unlock()
}

// Add imports messages received from peers. Every message is verified before
// anything is written; valid new ones are committed to their author's branch
// (one commit per branch per call), ones already stored are counted as
// duplicates, and invalid ones are rejected and never stored. A non-nil error
// means storage failed; rejections are reported in the result.
func (s *Store) Add(ctx context.Context, msgs []Message) (AddResult, error) {
	var res AddResult
	have, err := s.idSet(ctx)
	if err != nil {
		return res, err
	}
	byBranch := map[string]map[string][]byte{}
	seen := map[string]bool{}
	for _, m := range msgs {
		if err := m.Verify(); err != nil {
			res.Rejected++
			if len(res.Errors) < maxErrors {
				res.Errors = append(res.Errors, fmt.Errorf("memory: reject message by %.8s at %q: %w", m.Author, m.Timestamp, err))
			}
			continue
		}
		id := m.ID()
		if have[id] || seen[id] {
			res.Duplicate++
			continue
		}
		seen[id] = true
		data, err := encode(m)
		if err != nil {
			return res, fmt.Errorf("memory: add: %w", err)
		}
		s.rememberVerified(data, m)
		b := BranchFor(m.Author)
		if byBranch[b] == nil {
			byBranch[b] = map[string][]byte{}
		}
		byBranch[b][s.path(m)] = data
	}
	branches := make([]string, 0, len(byBranch))
	for b := range byBranch {
		branches = append(branches, b)
	}
	sort.Strings(branches)
	for _, b := range branches {
		files := byBranch[b]
		added, err := s.commit(ctx, b, files, fmt.Sprintf("import %d memories", len(files)))
		if err != nil {
			return res, fmt.Errorf("memory: add: %w", err)
		}
		res.Added += added
		res.Duplicate += len(files) - added // stored meanwhile by another writer
	}
	return res, nil
}

// packThreshold is the number of new files from which a commit's objects
// are written as one packfile rather than as loose objects.
const packThreshold = 8

// commit adds files to branch in one commit under the repository lock and
// returns how many were new. Nothing is committed if none was new.
func (s *Store) commit(ctx context.Context, branch string, files map[string][]byte, msg string) (int, error) {
	unlock, err := s.lockRepo(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	s.swept.Do(s.removeStaleRefTemps)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.commitLocked(branch, files, msg)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		// Another process (or git gc) wrote a packfile this storage has
		// not indexed yet.
		s.reindexLocked()
		n, err = s.commitLocked(branch, files, msg)
	}
	return n, err
}

func (s *Store) reindexLocked() {
	if r, ok := s.st.(interface{ Reindex() }); ok {
		r.Reindex()
	}
}

func (s *Store) commitLocked(branch string, files map[string][]byte, msg string) (int, error) {
	ref := plumbing.NewBranchReferenceName(branch)
	var parent, root plumbing.Hash
	switch r, err := s.st.Reference(ref); {
	case errors.Is(err, plumbing.ErrReferenceNotFound):
	case err != nil:
		return 0, fmt.Errorf("read %s: %w", ref, err)
	default:
		c, err := object.GetCommit(s.st, r.Hash())
		if err != nil {
			return 0, fmt.Errorf("read commit %s: %w", r.Hash(), err)
		}
		parent, root = c.Hash, c.TreeHash
	}
	packed := len(files) >= packThreshold
	w := &objectWriter{st: gitmem.NewStorage(), loose: !packed, gitDir: s.gitDir}
	te := &treeEdit{w: w, read: s.st, cached: s.roots[branch]}
	tree, err := te.apply(root, files)
	if err != nil {
		return 0, err
	}
	if len(te.added) == 0 {
		return 0, nil
	}
	short := strings.TrimPrefix(branch, BranchPrefix)
	sig := object.Signature{Name: short, Email: short + "@mmogit", When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg + "\n", TreeHash: tree}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	ch, err := w.put(plumbing.CommitObject, c, nil)
	if err != nil {
		return 0, fmt.Errorf("write commit: %w", err)
	}
	if packed {
		err = writePack(s.st, w)
	} else {
		err = w.sync()
	}
	if err != nil {
		return 0, fmt.Errorf("sync objects: %w", err)
	}
	if err := s.writeRef(ref, ch); err != nil {
		return 0, err
	}
	s.roots[branch] = rootCache{hash: tree, entries: te.root}
	s.extendScanLocked(branch, parent, ch, te.added, files)
	return len(te.added), nil
}

// refTempPattern names writeRef's temporary files in the git directory.
const refTempPattern = "mmogit-ref-*.tmp"

// removeStaleRefTemps removes temporaries left by a writer that died
// between creating and renaming one (kill -9, power loss). Every writer
// holds the repository lock while its temporary exists, so under the lock
// any that is there is stale. Failures only leave the file behind.
func (s *Store) removeStaleRefTemps() {
	stale, _ := filepath.Glob(filepath.Join(s.gitDir, refTempPattern))
	for _, p := range stale {
		os.Remove(p)
	}
}

// writeRef points ref at h by writing a temporary file and renaming it over
// the loose ref: readers (go-git, the git CLI, other processes) see the old
// or the new commit, never a torn file.
func (s *Store) writeRef(ref plumbing.ReferenceName, h plumbing.Hash) error {
	p := filepath.Join(s.gitDir, filepath.FromSlash(ref.String()))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("update %s: %w", ref, err)
	}
	tmp, err := os.CreateTemp(s.gitDir, refTempPattern)
	if err != nil {
		return fmt.Errorf("update %s: %w", ref, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	_, err = tmp.WriteString(h.String() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err == nil {
		err = syncPath(filepath.Dir(p))
	}
	if err != nil {
		return fmt.Errorf("update %s: %w", ref, err)
	}
	return nil
}

// All returns every file on every users/* branch, oldest first (by message
// timestamp; files without a readable timestamp come last, by path). A file
// edited after signing, or one that is not a message at all, is returned
// with Valid false and the reason in Err.
func (s *Store) All(ctx context.Context) ([]Entry, error) {
	all, err := s.entries(ctx)
	if err != nil {
		return nil, err
	}
	sortByTime(all)
	return all, nil
}

// entries is All unsorted, for callers that index rather than list (the
// sort was a sixth of a bulk import's time).
func (s *Store) entries(ctx context.Context) ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []Entry
	refs, err := s.branchRefsLocked()
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("memory: list: %w", err)
		}
		es, err := s.scanBranchLocked(r)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			s.reindexLocked() // packed by another process since we looked
			es, err = s.scanBranchLocked(r)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, es...)
	}
	return all, nil
}

// sortByTime orders entries oldest first; entries without a readable
// timestamp go last. Ties break on branch and path so the order is stable.
func sortByTime(es []Entry) {
	type keyed struct {
		e  Entry
		t  time.Time
		ok bool
	}
	ks := make([]keyed, len(es))
	for i, e := range es {
		t, err := e.Message.Time()
		ks[i] = keyed{e, t, err == nil && (e.ID != "" || e.Envelope != nil)}
	}
	sort.SliceStable(ks, func(a, b int) bool {
		ka, kb := ks[a], ks[b]
		if ka.ok != kb.ok {
			return ka.ok
		}
		if ka.ok && !ka.t.Equal(kb.t) {
			return ka.t.Before(kb.t)
		}
		if ka.e.Branch != kb.e.Branch {
			return ka.e.Branch < kb.e.Branch
		}
		return ka.e.Path < kb.e.Path
	})
	for i := range ks {
		es[i] = ks[i].e
	}
}

func (s *Store) branchRefsLocked() ([]*plumbing.Reference, error) {
	it, err := s.st.IterReferences()
	if err != nil {
		return nil, fmt.Errorf("memory: list branches: %w", err)
	}
	defer it.Close()
	var refs []*plumbing.Reference
	err = it.ForEach(func(r *plumbing.Reference) error {
		if r.Name().IsBranch() && strings.HasPrefix(r.Name().Short(), BranchPrefix) && r.Type() == plumbing.HashReference {
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("memory: list branches: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name() < refs[j].Name() })
	return refs, nil
}

// scanBranchLocked returns the entries of one branch, reusing the previous
// scan if the branch has not moved and parsed blobs from any earlier scan.
func (s *Store) scanBranchLocked(r *plumbing.Reference) ([]Entry, error) {
	branch := r.Name().Short()
	if c, ok := s.branches[branch]; ok && c.commit == r.Hash() {
		return c.entries, nil
	}
	c, err := object.GetCommit(s.st, r.Hash())
	if err != nil {
		return nil, fmt.Errorf("memory: read %s: %w", branch, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("memory: read %s tree: %w", branch, err)
	}
	var entries []Entry
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, te, err := walker.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("memory: walk %s: %w", branch, err)
		}
		if !te.Mode.IsFile() {
			continue
		}
		p, err := s.parseBlobLocked(te.Hash)
		if err != nil {
			return nil, fmt.Errorf("memory: read %s:%s: %w", branch, name, err)
		}
		entries = append(entries, entryFor(branch, name, p))
	}
	s.branches[branch] = branchScan{commit: r.Hash(), entries: entries}
	return entries, nil
}

func (s *Store) parseBlobLocked(h plumbing.Hash) (parsed, error) {
	if p, ok := s.blobs[h]; ok {
		return p, nil
	}
	b, err := object.GetBlob(s.st, h)
	if err != nil {
		return parsed{}, err
	}
	rd, err := b.Reader()
	if err != nil {
		return parsed{}, err
	}
	defer rd.Close()
	p := parseMessage(rd)
	s.blobs[h] = p
	return p, nil
}

// parsedBytesLocked is parseBlobLocked for a blob whose bytes are at hand.
func (s *Store) parsedBytesLocked(data []byte) parsed {
	h := plumbing.ComputeHash(plumbing.BlobObject, data)
	if p, ok := s.blobs[h]; ok {
		return p
	}
	p := parseMessage(bytes.NewReader(data))
	s.blobs[h] = p
	return p
}

// parseMessage decodes one message file and verifies it. A file that is
// not a message but a reference encrypted envelope is recognised as such.
func parseMessage(r io.Reader) parsed {
	data, err := io.ReadAll(io.LimitReader(r, refenvelope.MaxFileBytes+1))
	if err != nil {
		return parsed{err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	m, err := decodeMessage(data)
	if err != nil {
		if env, eerr := refenvelope.Parse(data); eerr == nil {
			return parsed{env: env, msg: Message{Timestamp: env.Timestamp}, err: ErrEnvelope}
		}
		return parsed{err: err}
	}
	return parsed{msg: m, err: m.Verify()}
}

// decodeMessage decodes the JSON of one message, refusing unknown fields.
func decodeMessage(data []byte) (Message, error) {
	var m Message
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

// entryFor is the Entry a scan of branch would give for the file at path.
func entryFor(branch, path string, p parsed) Entry {
	e := Entry{Message: p.msg, Branch: branch, Path: path, Valid: p.err == nil, Err: p.err, Envelope: p.env}
	if !errors.Is(p.err, ErrMalformed) && p.env == nil {
		e.ID = p.msg.ID()
	}
	return e
}

// extendScanLocked moves the cached scan of branch from parent to commit,
// which added the files at paths: a commit only ever adds files (see
// treeEdit), so this equals a rescan without walking the whole tree again,
// which after every batch of a large import was a fifth of its time.
func (s *Store) extendScanLocked(branch string, parent, commit plumbing.Hash, paths []string, files map[string][]byte) {
	c, ok := s.branches[branch]
	if !ok || c.commit != parent {
		return // no scan at parent: the next read scans
	}
	entries := slices.Clip(c.entries) // never append into a slice handed out
	for _, path := range paths {
		entries = append(entries, entryFor(branch, path, s.parsedBytesLocked(files[path])))
	}
	s.branches[branch] = branchScan{commit: commit, entries: entries}
}

// Inventory returns the IDs of the valid messages in the store, sorted, by
// author (64 hex).
func (s *Store) Inventory(ctx context.Context) (map[string][]string, error) {
	es, err := s.entries(ctx)
	if err != nil {
		return nil, err
	}
	inv := map[string][]string{}
	seen := map[string]bool{}
	for _, e := range es {
		if e.Valid && !seen[e.ID] {
			seen[e.ID] = true
			inv[e.Message.Author] = append(inv[e.Message.Author], e.ID)
		}
	}
	for _, ids := range inv {
		sort.Strings(ids)
	}
	return inv, nil
}

func (s *Store) idSet(ctx context.Context) (map[string]bool, error) {
	es, err := s.entries(ctx)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(es))
	for _, e := range es {
		if e.Valid {
			set[e.ID] = true
		}
	}
	return set, nil
}

// Get returns the valid stored messages with the given IDs, in the order
// asked; unknown IDs are skipped.
func (s *Store) Get(ctx context.Context, ids []string) ([]Message, error) {
	es, err := s.entries(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]Message, len(es))
	for _, e := range es {
		if e.Valid {
			byID[e.ID] = e.Message
		}
	}
	out := make([]Message, 0, len(ids))
	for _, id := range ids {
		if m, ok := byID[id]; ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// ShortID returns the first 8 hex characters of an author key or ID.
func ShortID(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}
