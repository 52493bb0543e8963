package tor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/torctl"
)

// ErrBootstrapStalled is matched by a *BootstrapError.
var ErrBootstrapStalled = errors.New("tor: bootstrap stalled")

// BootstrapError reports a bootstrap that made no progress for
// Config.BootstrapTimeout, with tor's last warning.
type BootstrapError struct {
	Last    BootstrapStatus
	Warning string // from STATUS_CLIENT BOOTSTRAP WARNING= or tor.log
	Stalled time.Duration
}

func (e *BootstrapError) Error() string {
	msg := fmt.Sprintf("tor: bootstrap stalled at %d%% (%s) for %s", e.Last.Progress, e.Last.Summary, e.Stalled)
	if e.Warning != "" {
		msg += "; tor's last warning: " + e.Warning
	}
	return msg
}

func (e *BootstrapError) Is(target error) bool { return target == ErrBootstrapStalled }

// WaitBootstrap waits until tor reports PROGRESS=100: GETINFO
// status/bootstrap-phase first, then STATUS_CLIENT BOOTSTRAP events. Each
// change is passed to Config.Progress. If progress stops for
// Config.BootstrapTimeout it returns a *BootstrapError. Readiness is never
// judged by the SOCKS port accepting connections: tor accepts them long
// before it can build circuits.
func (d *Daemon) WaitBootstrap(ctx context.Context) error {
	// Subscribe before asking, so no event between the two is lost.
	sub, err := d.conn.Subscribe(ctx, "STATUS_CLIENT")
	if err != nil {
		return fmt.Errorf("tor: bootstrap: %w", err)
	}
	defer sub.Cancel()
	st, err := d.conn.BootstrapPhase(ctx)
	if err != nil {
		return fmt.Errorf("tor: bootstrap: %w", err)
	}
	timeout := d.cfg.BootstrapTimeout
	if timeout <= 0 {
		timeout = DefaultBootstrapTimeout
	}
	var last BootstrapStatus
	warning := ""
	report := func(s BootstrapStatus) {
		if s.Warning != "" {
			warning = s.Warning
			if s.Reason != "" {
				warning += " (" + s.Reason + ")"
			}
		}
		if s.Progress != last.Progress || s.Tag != last.Tag {
			if d.cfg.Progress != nil {
				d.cfg.Progress(s)
			}
		}
	}
	report(st)
	last = st
	stall := time.NewTimer(timeout)
	defer stall.Stop()
	for !last.Done() {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return fmt.Errorf("tor: bootstrap: %w", d.conn.Err())
			}
			s, ok, err := torctl.BootstrapFromEvent(ev)
			if !ok || err != nil {
				continue
			}
			if s.Progress > last.Progress {
				stall.Reset(timeout)
			}
			report(s)
			if s.Progress >= last.Progress {
				last = s
			}
		case <-stall.C:
			if warning == "" {
				warning = lastLogLine(filepath.Join(d.cfg.DataDir, "tor.log"), "[warn]", "[err]")
			}
			return &BootstrapError{Last: last, Warning: warning, Stalled: timeout}
		case <-d.Done():
			return fmt.Errorf("tor: bootstrap: %w: %s", d.Err(), d.diagnostics())
		case <-ctx.Done():
			return fmt.Errorf("tor: bootstrap at %d%%: %w", last.Progress, ctx.Err())
		}
	}
	if err := d.refreshSocksAddr(ctx); err != nil {
		return err
	}
	return nil
}

// lastLogLine returns the last line of a tor log containing one of marks.
// rootWarning marks tor's warning about running as root, logged at every
// start, which is never why something failed.
const rootWarning = "running Tor as root"

func lastLogLine(path string, marks ...string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	last := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), rootWarning) {
			continue // explains no failure
		}
		for _, m := range marks {
			if strings.Contains(sc.Text(), m) {
				last = sc.Text()
			}
		}
	}
	return last
}

// tailBuffer keeps the last max lines written to it (tor's stdout/stderr).
type tailBuffer struct {
	max int

	// mu guards the fields below.
	mu      sync.Mutex
	lines   []string
	partial string
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.partial + string(p)
	parts := strings.Split(s, "\n")
	b.partial = parts[len(parts)-1]
	b.lines = append(b.lines, parts[:len(parts)-1]...)
	if len(b.lines) > b.max {
		b.lines = b.lines[len(b.lines)-b.max:]
	}
	if len(b.partial) > 4096 {
		b.partial = b.partial[:4096]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(append(append([]string(nil), b.lines...), b.partial), "\n")
}
