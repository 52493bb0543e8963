package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/schollz/progressbar/v3"
)

// agentLog is the background agent's log file in the config dir.
const agentLog = "agent.log"

func apiClient() *localapi.Client { return &localapi.Client{Dir: g.configDir} }

// startArgs are the flags `tor start` passes on to `agent run`.
type startArgs struct {
	testnet    string        // --testnet D: join the private network in D
	bootstrap  []string      // --bootstrap: DHT bootstrap peers
	useBridges bool          // --use-bridges
	transport  string        // --transport: override the configured policy
	services   []string      // --services: advertise these while running
	timeout    time.Duration // --timeout: give up waiting for "published"
}

func (a startArgs) agentFlags() []string {
	args := []string{"--config-dir", g.configDir, "agent", "run"}
	if a.testnet != "" {
		args = append(args, "--testnet", a.testnet)
	}
	for _, b := range a.bootstrap {
		args = append(args, "--bootstrap", b)
	}
	if a.useBridges {
		args = append(args, "--use-bridges")
	}
	if a.transport != "" {
		args = append(args, "--transport", a.transport)
	}
	if len(a.services) > 0 {
		args = append(args, "--services", strings.Join(a.services, ","))
	}
	for range g.verbose {
		args = append(args, "-v")
	}
	return args
}

// startAgent launches `mmogit agent run` in the background (its own session,
// so it survives this command) and waits until it is ready, drawing tor's
// bootstrap progress.
func startAgent(ctx context.Context, a startArgs) (localapi.Status, error) {
	if _, err := identity.Load(g.configDir); err != nil {
		return localapi.Status{}, err
	}
	c := apiClient()
	if st, err := c.Status(ctx); err == nil {
		return st, fmt.Errorf("an agent is already running for %s (pid %d); stop it with `mmogit tor stop`", g.configDir, st.PID)
	}
	exe, err := os.Executable()
	if err != nil {
		return localapi.Status{}, err
	}
	if a.testnet != "" {
		if a.testnet, err = filepath.Abs(a.testnet); err != nil {
			return localapi.Status{}, err
		}
		if _, err := loadTestnet(a.testnet); err != nil {
			return localapi.Status{}, err
		}
	}
	if err := os.MkdirAll(g.configDir, 0o700); err != nil {
		return localapi.Status{}, err
	}
	logPath := filepath.Join(g.configDir, agentLog)
	logf, logStart, err := openAgentLog(logPath, maxAgentLog)
	if err != nil {
		return localapi.Status{}, err
	}
	defer logf.Close()
	cmd := exec.Command(exe, a.agentFlags()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	platform.Detach(cmd)
	if err := cmd.Start(); err != nil {
		return localapi.Status{}, fmt.Errorf("start agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	// A redrawn bar only on a terminal; otherwise (a log, a pipe) one
	// line per phase.
	var bar *progressbar.ProgressBar
	if !g.json && isTerminal(g.stderr) {
		bar = progressbar.NewOptions(100,
			progressbar.OptionSetWriter(g.stderr),
			progressbar.OptionSetDescription("tor bootstrap"),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish(),
		)
	}
	deadline := time.After(a.timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastDesc := ""
	started := time.Now()
	for {
		select {
		case err := <-exited:
			return localapi.Status{}, fmt.Errorf("agent exited before it was ready (%v); last lines of %s:\n%s", err, logPath, tail(logPath, logStart, 15))
		case <-deadline:
			return localapi.Status{}, fmt.Errorf("agent not ready after %s (it keeps trying in the background; see `mmogit tor status` and %s):\n%s", a.timeout, logPath, tail(logPath, logStart, 15))
		case <-ctx.Done():
			return localapi.Status{}, ctx.Err()
		case <-tick.C:
		}
		st, err := c.Status(ctx)
		if err != nil {
			continue // not listening yet
		}
		if st.Ready {
			done := "onion service published"
			if st.Transport == "direct" {
				done = "agent ready"
			}
			if bar != nil {
				bar.Describe(done)
				bar.Set(100)
				bar.Finish()
			}
			g.infof("%s after %.1fs\n", done, time.Since(started).Seconds())
			return st, nil
		}
		desc := "tor: " + st.BootstrapSummary
		if st.BootstrapProgress == 100 && !st.Published {
			desc = "publishing onion service"
		}
		if st.Transport == "direct" {
			desc = "starting"
		}
		if desc != lastDesc {
			if bar != nil {
				bar.Describe(desc)
			} else {
				g.infof("%s (tor bootstrap %d%%)\n", desc, st.BootstrapProgress)
			}
			lastDesc = desc
		}
		if bar != nil {
			bar.Set(st.BootstrapProgress)
		}
		if st.Error != "" {
			g.log.Warn("agent reports", "error", st.Error)
		}
	}
}

// stopAgent asks the agent to stop and waits for it, killing it if it
// does not stop in time.
func stopAgent(ctx context.Context) (int, error) {
	c := apiClient()
	st, err := c.Status(ctx)
	if err != nil {
		return 0, err
	}
	if err := c.Shutdown(ctx); err != nil && !localapi.IsNotRunning(err) {
		return st.PID, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if !platform.Alive(st.PID) {
			return st.PID, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	platform.Kill(st.PID)
	return st.PID, errors.New("agent did not stop within 20s; killed it")
}

// isTerminal reports whether w is a terminal (a character device), where
// redrawing a progress bar makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// tail returns the last n lines of a file from offset from on (this
// agent's part of an appended log), for error messages.
func tail(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		lines = append(lines, "  "+sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func printStatus(w io.Writer, st localapi.Status) {
	pub := "no"
	if st.Published {
		pub = "yes"
	}
	fmt.Fprintf(w, "agent:          pid %d, transport %s\n", st.PID, st.Transport)
	fmt.Fprintf(w, "peer id:        %s\n", st.PeerID)
	if st.Transport != "direct" {
		fmt.Fprintf(w, "onion address:  %s (published: %s)\n", st.OnionAddress, pub)
		fmt.Fprintf(w, "tor bootstrap:  %d%% %s\n", st.BootstrapProgress, st.BootstrapSummary)
		if st.TorVersion != "" {
			fmt.Fprintf(w, "tor:            %s, restarts %d, PoW defenses %v\n", st.TorVersion, st.TorRestarts, st.PoW)
		}
	}
	if len(st.Listen) > 0 {
		fmt.Fprintf(w, "listening:      %s\n", strings.Join(st.Listen, " "))
	}
	fmt.Fprintf(w, "peers:          %d connected, %d known\n", st.PeersConnected, st.PeersKnown)
	if len(st.Services) > 0 {
		fmt.Fprintf(w, "advertising:    %s\n", strings.Join(st.Services, ","))
	}
	if st.Error != "" {
		fmt.Fprintf(w, "last error:     %s\n", st.Error)
	}
}
