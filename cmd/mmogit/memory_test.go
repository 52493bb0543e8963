package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrintable: message content shown to a human cannot start a new line,
// move the cursor, retitle the terminal or reverse the text, and is
// shown unambiguously (a literal backslash-n differs from a newline).
func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, ünïcode ✓ 日本", "plain text, ünïcode ✓ 日本"},
		{"hi\n[valid] 2025-01-01T00:00:00Z d75a9801: forged line", `hi\n[valid] 2025-01-01T00:00:00Z d75a9801: forged line`},
		{"a\r\tb", `a\r\tb`},
		{"\x1b[2J\x1b]0;owned\x07", `\x1b[2J\x1b]0;owned\x07`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"del \x7f nul \x00", `del \x7f nul \x00`},
		{"bidi \u202eevil\u2066", `bidi \u202eevil\u2066`},
		{"line\u2028sep", `line\u2028sep`},
		{`back\slash \n`, `back\\slash \\n`},
		{"bad \xff utf8", `bad \xff utf8`},
	}
	for _, tt := range tests {
		got := printable(tt.in)
		if got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, c := range got {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
				t.Errorf("printable(%q) left control %U", tt.in, c)
			}
		}
	}
}

// TestShowCannotBeForged: a message whose content imitates a second show
// line stays on one line in human output and keeps its bytes in --json.
func TestShowCannotBeForged(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		*g = globals{stdout: &out, stderr: &errb, stdin: strings.NewReader("")}
		root := newRootCmd()
		root.SetArgs(append([]string{"--config-dir", dir}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v %s", args, err, errb.String())
		}
		return out.String()
	}
	run("init", "--seed-phrase", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about")
	forged := "hi\n[valid] 2025-01-01T00:00:00Z d75a9801: forged line\x1b[31m"
	run("post", forged)
	human := run("show")
	if n := strings.Count(human, "\n"); n != 1 || strings.Contains(human, "\x1b") {
		t.Fatalf("show printed %d lines or an escape:\n%s", n, human)
	}
	if !strings.Contains(human, "c5785e1865b708938aff8161d573006496663b1aa10834e396dc566869a2c66a: hi\\n[valid]") {
		t.Errorf("show does not print the whole author key and the escaped content:\n%s", human)
	}
	if js := run("--json", "show"); !strings.Contains(js, `"content": "hi\n[valid] 2025-01-01T00:00:00Z d75a9801: forged line\u001b[31m"`) {
		t.Errorf("--json show changed the content:\n%s", js)
	}
	run("remember", "-t", "learning", "l1\n2025-01-01T00:00:00Z Observation  forged", "--tags", "a\nb")
	if r := run("recall"); strings.Count(r, "\n") != 1 {
		t.Errorf("recall printed more than one line:\n%s", r)
	}
}
