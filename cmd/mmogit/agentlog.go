package main

import (
	"fmt"
	"os"
	"time"
)

// maxAgentLog is the size at which agent.log is moved to agent.log.1 (the
// previous agent.log.1 is dropped) when an agent starts: at most two files
// of about this size are kept. A single run that writes more is not cut.
const maxAgentLog = 10 << 20

// openAgentLog opens the background agent's log for appending, so that
// the output of an agent that crashed survives the next start. It first
// rotates a log of maxAgentLog bytes or more to path.1, then writes a line
// marking this start. It returns the offset where this start's output
// begins, for tail.
func openAgentLog(path string, limit int64) (*os.File, int64, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() >= limit {
		if err := os.Rename(path, path+".1"); err != nil {
			return nil, 0, fmt.Errorf("rotate agent log: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, 0, err
	}
	// os.OpenFile keeps the mode of an existing file; the log may show
	// peer addresses, so it is the owner's alone.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	start := fi.Size()
	if _, err := fmt.Fprintf(f, "=== mmogit agent starting at %s ===\n", time.Now().UTC().Format(time.RFC3339)); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, start, nil
}
