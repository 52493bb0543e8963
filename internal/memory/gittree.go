package memory

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/idxfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage"
)

// objectWriter writes git objects, either as loose object files (each
// written to a temporary file, fsynced and renamed into place) or into an
// in-memory storer for writePack, and remembers them so that they are
// durable before the branch ref moves. Loose objects are not written through
// go-git's storage because after a failed write (a full disk) it leaves its
// temporary file behind.
type objectWriter struct {
	st      storer.EncodedObjectStorer // where new objects go unless loose
	loose   bool                       // write loose object files instead
	gitDir  string
	written []plumbing.Hash
	dirs    map[string]bool // fan-out directories that got loose objects
}

type encoder interface {
	Encode(plumbing.EncodedObject) error
}

func (w *objectWriter) put(t plumbing.ObjectType, v encoder, raw []byte) (plumbing.Hash, error) {
	obj := &plumbing.MemoryObject{}
	obj.SetType(t)
	if v != nil {
		if err := v.Encode(obj); err != nil {
			return plumbing.ZeroHash, err
		}
	} else if _, err := obj.Write(raw); err != nil {
		return plumbing.ZeroHash, err
	}
	h := obj.Hash()
	if w.loose {
		if err := w.writeLoose(obj); err != nil {
			return plumbing.ZeroHash, fmt.Errorf("memory: write object %s: %w", h, err)
		}
	} else if _, err := w.st.SetEncodedObject(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	w.written = append(w.written, h)
	return h, nil
}

// writeLoose stores obj as objects/<2 hex>/<38 hex>: zlib of "<type>
// <size>\0<data>", as git writes it. The temporary file is named like git's
// own (tmp_obj_), so git treats one left by a crash as its own leftover.
func (w *objectWriter) writeLoose(obj *plumbing.MemoryObject) error {
	hs := obj.Hash().String()
	dir := filepath.Join(w.gitDir, "objects", hs[:2])
	name := filepath.Join(dir, hs[2:])
	if _, err := os.Stat(name); err == nil {
		return nil // content-addressed: already stored
	}
	var buf bytes.Buffer
	// zlib at BestSpeed, as in packs: in the flat layout a root tree is
	// megabytes, and at the default level compressing it was most of a
	// post's time. Git reads any level.
	level := zlib.BestSpeed
	if obj.Size() > 1<<20 {
		level = zlib.HuffmanOnly // a big root tree: hex names still halve, at a fraction of the time
	}
	zw, _ := zlib.NewWriterLevel(&buf, level)
	_, err := fmt.Fprintf(zw, "%s %d\x00", obj.Type(), obj.Size())
	if err == nil {
		var r io.ReadCloser
		if r, err = obj.Reader(); err == nil {
			_, err = io.Copy(zw, r)
			r.Close()
		}
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeFileSynced(dir, "tmp_obj_", name, buf.Bytes()); err != nil {
		return err
	}
	if w.dirs == nil {
		w.dirs = map[string]bool{}
	}
	w.dirs[dir] = true
	return nil
}

// sync makes the names of the written loose objects durable (their
// contents were fsynced as they were written).
func (w *objectWriter) sync() error {
	for d := range w.dirs {
		if err := syncPath(d); err != nil {
			return err
		}
	}
	return nil
}

func syncPath(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// sortEntries orders tree entries as git requires: by name, with a subtree
// compared as if its name ended in "/".
func sortEntries(es []object.TreeEntry) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(es, func(i, j int) bool { return key(es[i]) < key(es[j]) })
}

// treeEdit adds files to a tree given by hash (zero for an empty tree).
// Paths are "name" (the flat layout this package writes) or "dir/name"
// (the fan-out layout it used to write), at most one directory level. Existing paths are left untouched and reported as skipped,
// which is what makes Add idempotent under the branch lock.
type treeEdit struct {
	w     *objectWriter
	read  storer.EncodedObjectStorer // where existing trees are read from
	added []string
	// cached, if its hash is the root being edited, saves reading and
	// decoding it (in the flat layout, 100,000 entries); root is the
	// edited root's entries, to be cached in turn.
	cached rootCache
	root   []object.TreeEntry
}

// rootCache is a root tree's entries (sorted, never modified in place).
type rootCache struct {
	hash    plumbing.Hash
	entries []object.TreeEntry
}

func (te *treeEdit) apply(root plumbing.Hash, files map[string][]byte) (plumbing.Hash, error) {
	var rootEntries []object.TreeEntry
	if !root.IsZero() && root == te.cached.hash {
		rootEntries = slices.Clone(te.cached.entries)
	} else {
		var err error
		if rootEntries, err = te.entries(root); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	byDir := map[string]map[string][]byte{}
	var rootFiles []string
	for p, data := range files {
		dir, name, ok := strings.Cut(p, "/")
		if !ok {
			if p == "" {
				return plumbing.ZeroHash, fmt.Errorf("memory: bad path %q", p)
			}
			rootFiles = append(rootFiles, p)
			continue
		}
		if name == "" || dir == "" || strings.Contains(name, "/") {
			return plumbing.ZeroHash, fmt.Errorf("memory: bad path %q", p)
		}
		if byDir[dir] == nil {
			byDir[dir] = map[string][]byte{}
		}
		byDir[dir][name] = data
	}
	if len(rootFiles) > 0 {
		have := make(map[string]bool, len(rootEntries))
		for _, e := range rootEntries {
			have[e.Name] = true
		}
		sort.Strings(rootFiles) // deterministic object order
		for _, name := range rootFiles {
			if have[name] {
				continue
			}
			h, err := te.w.put(plumbing.BlobObject, nil, files[name])
			if err != nil {
				return plumbing.ZeroHash, err
			}
			rootEntries = append(rootEntries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
			te.added = append(te.added, name)
		}
	}
	for dir, fs := range byDir {
		idx := -1
		var sub plumbing.Hash
		for i, e := range rootEntries {
			if e.Name == dir {
				if e.Mode != filemode.Dir {
					return plumbing.ZeroHash, fmt.Errorf("memory: %q is a file, want a directory", dir)
				}
				idx, sub = i, e.Hash
			}
		}
		subEntries, err := te.entries(sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		have := make(map[string]bool, len(subEntries))
		for _, e := range subEntries {
			have[e.Name] = true
		}
		changed := false
		for name, data := range fs {
			if have[name] {
				continue
			}
			h, err := te.w.put(plumbing.BlobObject, nil, data)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			subEntries = append(subEntries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
			te.added = append(te.added, dir+"/"+name)
			changed = true
		}
		if !changed {
			continue
		}
		sortEntries(subEntries)
		h, err := te.w.put(plumbing.TreeObject, &object.Tree{Entries: subEntries}, nil)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if idx >= 0 {
			rootEntries[idx].Hash = h
		} else {
			rootEntries = append(rootEntries, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: h})
		}
	}
	sortEntries(rootEntries)
	te.root = rootEntries
	return te.w.put(plumbing.TreeObject, &object.Tree{Entries: rootEntries}, nil)
}

func (te *treeEdit) entries(h plumbing.Hash) ([]object.TreeEntry, error) {
	if h.IsZero() {
		return nil, nil
	}
	t, err := object.GetTree(te.read, h)
	if err != nil {
		return nil, fmt.Errorf("memory: read tree %s: %w", h, err)
	}
	return append([]object.TreeEntry(nil), t.Entries...), nil
}

// writePack stores the objects staged in w (an in-memory storer) into st as
// one packfile with its index. Creating files is the slow part of loose
// objects on many filesystems, so bulk imports go through a pack: two files
// instead of one per object.
//
// The pack and index are built in memory (a batch is already held there),
// written to temporary files, fsynced and renamed into place pack first, so
// git never sees an index without its pack. On any failure, a full disk
// say, the temporary files are removed: a failed import leaves nothing
// behind. go-git's PackfileWriter is not used because after a failed write
// it keeps its temporary pack and file descriptors (the space stays taken
// until the process exits), and it writes the index in place.
func writePack(st storage.Storer, w *objectWriter) error {
	pack, h, mi, err := encodePack(w.st, w.written)
	if err != nil {
		return fmt.Errorf("memory: encode packfile: %w", err)
	}
	var idx bytes.Buffer
	if _, err := idxfile.NewEncoder(&idx).Encode(mi); err != nil {
		return fmt.Errorf("memory: index packfile: %w", err)
	}
	dir := filepath.Join(w.gitDir, "objects", "pack")
	base := filepath.Join(dir, "pack-"+h.String())
	if _, err := os.Stat(base + ".idx"); err == nil {
		return nil // the same objects were packed before: already durable
	}
	if err := writeFileSynced(dir, "tmp_pack_", base+".pack", pack); err != nil {
		return fmt.Errorf("memory: write packfile: %w", err)
	}
	if err := writeFileSynced(dir, "tmp_idx_", base+".idx", idx.Bytes()); err != nil {
		os.Remove(base + ".pack")
		return fmt.Errorf("memory: write pack index: %w", err)
	}
	if err := syncPath(dir); err != nil {
		return fmt.Errorf("memory: sync packfile: %w", err)
	}
	// The storage caches the pack indexes it has read; make it look again.
	if r, ok := st.(interface{ Reindex() }); ok {
		r.Reindex()
	}
	return nil
}

// writeFileSynced writes data to a temporary file in dir (named with
// prefix, as git names its own), fsyncs it and renames it to name,
// read-only as git leaves object files. The temporary file is removed if
// anything fails.
func writeFileSynced(dir, prefix, name string, data []byte) error {
	f, err := os.CreateTemp(dir, prefix)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o444)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// encodePack writes the objects named by hashes (duplicates once) as a
// version 2 packfile without deltas and builds its index as it goes.
// go-git's Encoder followed by its Parser compressed every object at zlib's
// default level and then inflated them all again just to learn the offsets
// and CRCs written a moment before; on a 10,000-message import that was a
// third of the time. Messages are small and unrelated, so deltas would
// gain little, and BestSpeed costs a few percent of pack size.
func encodePack(src storer.EncodedObjectStorer, hashes []plumbing.Hash) ([]byte, plumbing.Hash, *idxfile.MemoryIndex, error) {
	seen := make(map[plumbing.Hash]bool, len(hashes))
	uniq := make([]plumbing.Hash, 0, len(hashes))
	for _, h := range hashes {
		if !seen[h] {
			seen[h] = true
			uniq = append(uniq, h)
		}
	}
	var pack bytes.Buffer
	pack.WriteString("PACK")
	binary.Write(&pack, binary.BigEndian, [2]uint32{2, uint32(len(uniq))})
	iw := new(idxfile.Writer)
	iw.OnHeader(uint32(len(uniq)))
	zw, _ := zlib.NewWriterLevel(nil, zlib.BestSpeed)
	for _, h := range uniq {
		obj, err := src.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return nil, plumbing.ZeroHash, nil, err
		}
		start := pack.Len()
		pack.Write(packEntryHeader(obj.Type(), obj.Size()))
		zw.Reset(&pack)
		rd, err := obj.Reader()
		if err != nil {
			return nil, plumbing.ZeroHash, nil, err
		}
		_, err = io.Copy(zw, rd)
		rd.Close()
		if err == nil {
			err = zw.Close()
		}
		if err != nil {
			return nil, plumbing.ZeroHash, nil, err
		}
		crc := crc32.ChecksumIEEE(pack.Bytes()[start:])
		iw.OnInflatedObjectContent(h, int64(start), crc, nil)
	}
	sum := sha1.Sum(pack.Bytes())
	pack.Write(sum[:])
	var ph plumbing.Hash
	copy(ph[:], sum[:])
	if err := iw.OnFooter(ph); err != nil {
		return nil, plumbing.ZeroHash, nil, err
	}
	mi, err := iw.Index()
	return pack.Bytes(), ph, mi, err
}

// packEntryHeader is a pack entry's type and inflated size: 3 type bits and
// 4 size bits in the first byte, then 7 size bits per byte, low bits first,
// the high bit saying another byte follows.
func packEntryHeader(t plumbing.ObjectType, size int64) []byte {
	b := []byte{byte(t)<<4 | byte(size&0x0f)}
	for size >>= 4; size > 0; size >>= 7 {
		b[len(b)-1] |= 0x80
		b = append(b, byte(size&0x7f))
	}
	return b
}
