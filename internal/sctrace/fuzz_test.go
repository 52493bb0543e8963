package sctrace

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: no input makes Parse, Build or Analyze panic; traces are
// written by a tool that may be cut off mid-line.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"go-exec-tor.strace", "python-mixed.strace"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		evs, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		Analyze(Build(evs), Policy{ConfigDir: "/tmp/a", SocksPorts: []int{1}}, IsTorProgram)
	})
}
