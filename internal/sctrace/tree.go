package sctrace

import (
	"path/filepath"
	"strconv"
	"strings"
)

// Exited is the Syscall of the pseudo-event Parse emits for a
// "+++ exited with N +++" or "+++ killed by SIG +++" line (strace -q, not
// -qq). Exits let Build tell a reused task ID from the task that had it
// before.
const Exited = "+++exit"

// Task is one incarnation of a task ID: a process or a thread, from its
// creation (or first appearance) to its exit.
type Task struct {
	ID     int     // index in Tree.Tasks
	PID    int     // kernel task ID
	Parent int     // ID of the creating task, -1 if unknown (a root)
	Born   int     // line of the clone/fork return that created it, 0 if unknown
	Execs  []Exec  // successful execve calls, in order
	Events []Event // the task's events, in order
}

// Exec is a successful execve.
type Exec struct {
	Line int
	Path string
}

// Tree is the task tree of a trace.
type Tree struct {
	Tasks []*Task
	// Reused counts task IDs that were given to a second task during the
	// trace (harmless when exits are in the trace).
	Reused int
}

// creators are the calls whose return value is the new task's ID.
var creators = map[string]bool{"clone": true, "clone3": true, "fork": true, "vfork": true}

// Build assigns every event to a task incarnation and links tasks to their
// creators. It copes with strace's ordering, where a new task's first calls
// (e.g. the execve after vfork) often appear before its creator's clone
// returns: such a task is adopted by the clone that returns its ID.
func Build(events []Event) *Tree {
	t := &Tree{}
	live := map[int]*Task{}
	last := map[int]*Task{} // the newest task with this ID, live or exited
	newTask := func(pid, parent, born int) *Task {
		k := &Task{ID: len(t.Tasks), PID: pid, Parent: parent, Born: born}
		t.Tasks = append(t.Tasks, k)
		live[pid], last[pid] = k, k
		return k
	}
	seen := map[int]bool{}
	for _, e := range events {
		k := live[e.PID]
		if k == nil {
			if seen[e.PID] {
				t.Reused++
			}
			seen[e.PID] = true
			k = newTask(e.PID, -1, 0)
		}
		k.Events = append(k.Events, e)
		switch {
		case e.Syscall == Exited:
			delete(live, e.PID)
		case e.Syscall == "execve" || e.Syscall == "execveat":
			if e.OK() {
				k.Execs = append(k.Execs, Exec{Line: e.Line, Path: execPath(e)})
			}
		case creators[e.Syscall]:
			n, ok := e.RetInt()
			if !ok || n <= 0 {
				continue
			}
			child := int(n)
			// Adopt a child that spoke first, even one that already
			// exited (Go's pidfd probe child exits before its vfork
			// returns). Only the trace's first task is a true root.
			if c := last[child]; c != nil && c.Parent < 0 && c.Born == 0 && c.ID != 0 {
				c.Parent, c.Born = k.ID, e.Line
				continue
			}
			if seen[child] {
				t.Reused++
			}
			seen[child] = true
			newTask(child, k.ID, e.Line)
		}
	}
	return t
}

// execPath returns the program path of an execve (first argument) or of
// an execveat (second).
func execPath(e Event) string {
	args := e.ArgList()
	i := 0
	if e.Syscall == "execveat" {
		i = 1
	}
	if len(args) <= i {
		return ""
	}
	p, err := strconv.Unquote(strings.TrimSuffix(args[i], "..."))
	if err != nil {
		return args[i]
	}
	return p
}

// Marked reports whether task k, at trace line line, belongs to the subtree
// rooted at an execution of a program for which mark returns true: k ran
// such a program at or before line, or k's creator was in that subtree when
// it created k.
func (t *Tree) Marked(k *Task, line int, mark func(path string) bool) bool {
	for k != nil {
		for _, x := range k.Execs {
			if x.Line <= line && mark(x.Path) {
				return true
			}
		}
		if k.Parent < 0 {
			return false
		}
		line, k = k.Born, t.Tasks[k.Parent]
	}
	return false
}

// IsTorProgram reports whether path is tor or a pluggable transport tor
// runs (obfs4proxy, lyrebird): the programs whose traffic is tor's.
func IsTorProgram(path string) bool {
	switch filepath.Base(path) {
	case "tor", "obfs4proxy", "lyrebird":
		return true
	}
	return false
}
