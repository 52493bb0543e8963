// Package sctrace parses the output of `strace -f -o FILE` and classifies
// where a traced process tree sent network traffic. The anonymity tests use
// it to prove that a tor-only agent talks to nothing but its own tor: they
// run the agent under strace, build the process tree from the trace (so
// tor's own connections to relays are told apart from the agent's by
// ancestry, not by address), and check every connect/sendto/sendmsg of the
// agent's tasks against a Policy.
//
// Everything here is pure: it reads text and returns values, so it is
// table-tested on lines captured from strace 6.1.
package sctrace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// ErrSyntax is wrapped by errors about lines that look like syscalls but
// cannot be parsed.
var ErrSyntax = errors.New("sctrace: syntax error")

// Event is one completed (or never completed) system call of one task.
type Event struct {
	Line    int    // line number (1-based) where the call completed, or began if it never did
	PID     int    // task (thread) ID
	Syscall string // e.g. "connect"
	Args    string // the text between the parentheses, unfinished and resumed parts joined
	Ret     string // what follows "= ": "0", "-1 ENOENT (No such file or directory)", "12345", "?"; "?" too if the call never returned in the trace
}

// RetInt returns the numeric return value, if the call returned a number.
func (e Event) RetInt() (int64, bool) {
	f, _, _ := strings.Cut(e.Ret, " ")
	n, err := strconv.ParseInt(f, 0, 64)
	return n, err == nil
}

// OK reports whether the call returned without an error (not -1, not "?").
func (e Event) OK() bool {
	n, ok := e.RetInt()
	return ok && n >= 0
}

// ArgList splits Args at top-level commas (outside quotes, braces, brackets
// and parentheses), trimming spaces.
func (e Event) ArgList() []string { return splitTop(e.Args) }

const (
	unfinishedMark = " <unfinished ...>"
	resumedPrefix  = "<... "
	resumedSuffix  = " resumed>"
)

// Parse reads a whole trace. Lines that are not syscalls (signals "---",
// exits "+++", strace's own messages) are skipped. A call split by strace
// into "<unfinished ...>" and "<... NAME resumed>" lines becomes one Event
// at the resumed line; a call whose task died before it returned is
// reported at the end with Ret "?", because a connect that never returned
// was still attempted.
func Parse(r io.Reader) ([]Event, error) {
	type pending struct {
		line    int
		syscall string
		args    string
	}
	open := map[int]pending{}
	var out []Event
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		pid, rest, ok := splitPID(sc.Text())
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, resumedPrefix) {
			name, tail, ok := strings.Cut(rest[len(resumedPrefix):], resumedSuffix)
			if !ok {
				return nil, fmt.Errorf("%w: line %d: bad resumed line %q", ErrSyntax, n, rest)
			}
			p, had := open[pid]
			delete(open, pid)
			if !had || p.syscall != name {
				// The start was before the trace or belongs to a call we
				// lost track of: keep what we have.
				p = pending{line: n, syscall: name}
			}
			// A task killed while its call was resumed shows
			// "<... connect resumed> <unfinished ...>) = ?".
			tail = strings.Replace(tail, unfinishedMark, "", 1)
			ev, err := parseCall(pid, n, name+"("+p.args+tail)
			if err != nil {
				return nil, err
			}
			out = append(out, ev)
			continue
		}
		if x, ok := strings.CutPrefix(rest, "+++ "); ok {
			// "+++ exited with 0 +++", "+++ killed by SIGKILL +++"
			x = strings.TrimSuffix(x, " +++")
			if strings.HasPrefix(x, "exited with ") || strings.HasPrefix(x, "killed by ") {
				out = append(out, Event{Line: n, PID: pid, Syscall: Exited, Ret: x})
			}
			continue
		}
		name, _, ok := cutName(rest)
		if !ok {
			continue // "--- SIGCHLD ...", strace's own messages
		}
		if s, ok := strings.CutSuffix(rest, unfinishedMark); ok {
			open[pid] = pending{line: n, syscall: name, args: s[len(name)+1:]}
			continue
		}
		ev, err := parseCall(pid, n, rest)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("sctrace: read trace: %w", err)
	}
	for pid, p := range open {
		out = append(out, Event{Line: p.line, PID: pid, Syscall: p.syscall, Args: p.args, Ret: "?"})
	}
	// Calls that never returned go where they began, before their task's
	// exit line.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out, nil
}

// splitPID strips the task ID strace -f puts in front of every line, either
// "1234 " (with -o) or "[pid  1234] " (on stderr).
func splitPID(line string) (int, string, bool) {
	line = strings.TrimLeft(line, " ")
	if r, ok := strings.CutPrefix(line, "[pid"); ok {
		num, rest, ok := strings.Cut(r, "]")
		if !ok {
			return 0, "", false
		}
		pid, err := strconv.Atoi(strings.TrimSpace(num))
		return pid, strings.TrimLeft(rest, " "), err == nil
	}
	num, rest, ok := strings.Cut(line, " ")
	if !ok {
		return 0, "", false
	}
	pid, err := strconv.Atoi(num)
	return pid, strings.TrimLeft(rest, " "), err == nil
}

// cutName returns the syscall name of "name(...", if rest starts like a
// call.
func cutName(rest string) (name, after string, ok bool) {
	i := strings.IndexByte(rest, '(')
	if i <= 0 {
		return "", "", false
	}
	for _, c := range rest[:i] {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return "", "", false
		}
	}
	return rest[:i], rest[i+1:], true
}

// parseCall parses "name(args) = ret".
func parseCall(pid, line int, s string) (Event, error) {
	name, after, ok := cutName(s)
	if !ok {
		return Event{}, fmt.Errorf("%w: line %d: no call in %q", ErrSyntax, line, s)
	}
	end := matchParen(after)
	if end < 0 {
		return Event{}, fmt.Errorf("%w: line %d: unbalanced %q", ErrSyntax, line, s)
	}
	ret := strings.TrimSpace(after[end+1:])
	ret, ok = strings.CutPrefix(ret, "=")
	if !ok {
		return Event{}, fmt.Errorf("%w: line %d: no return value in %q", ErrSyntax, line, s)
	}
	return Event{Line: line, PID: pid, Syscall: name, Args: after[:end], Ret: strings.TrimSpace(ret)}, nil
}

// matchParen returns the index in s of the ")" closing a "(" that came just
// before s, skipping quoted strings and nested brackets, or -1.
func matchParen(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			i = skipQuoted(s, i)
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			if depth == 0 {
				if s[i] == ')' {
					return i
				}
				return -1
			}
			depth--
		}
	}
	return -1
}

// skipQuoted returns the index of the closing quote of the string starting
// at s[i] (strace escapes '"' and '\' inside strings), or len(s)-1.
func skipQuoted(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j
		}
	}
	return len(s) - 1
}

// splitTop splits s at commas outside quotes and brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			i = skipQuoted(s, i)
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" || len(out) > 0 {
		out = append(out, rest)
	}
	return out
}
