// Package cluster runs real mmogit agent processes (the mmogit binary's
// `agent run`) against a private Tor network. The demo, the integration
// tests and the bench command use it, so all three exercise exactly what a
// user runs.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/config"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/trust"
)

// Agent is one agent process and its config directory.
type Agent struct {
	Name   string
	Dir    string
	ID     *identity.Identity
	Client *localapi.Client
	Log    string // path of its log file

	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

// AgentOptions configure NewAgent.
type AgentOptions struct {
	Bin       string // the mmogit binary
	Dir       string // config dir (created 0700)
	Name      string
	Phrase    string // seed phrase; empty = a new 24-word mnemonic
	Testnet   string // join the private network in this dir
	Bootstrap []string
	Services  []string
	// Configure edits the config before the agent starts.
	Configure func(*config.Config)
	Verbose   bool
}

// Prepare creates an agent's identity and config without starting it.
func Prepare(o AgentOptions) (*Agent, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	phrase := o.Phrase
	if phrase == "" {
		m, err := identity.NewMnemonic()
		if err != nil {
			return nil, err
		}
		phrase = m
	}
	if err := identity.Save(o.Dir, phrase, true); err != nil {
		return nil, err
	}
	id, err := identity.FromPhrase(phrase)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(o.Dir)
	if err != nil {
		return nil, err
	}
	if len(o.Services) > 0 {
		cfg.Services = o.Services
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	if err := config.Save(o.Dir, cfg); err != nil {
		return nil, err
	}
	return &Agent{Name: o.Name, Dir: o.Dir, ID: id, Client: &localapi.Client{Dir: o.Dir}, Log: filepath.Join(o.Dir, "agent.log")}, nil
}

// Start runs `mmogit agent run` for a prepared agent. The process gets
// SIGKILL if this process dies (Pdeathsig), so nothing outlives a crashed
// test or demo.
func (a *Agent) Start(o AgentOptions) error {
	args := []string{"--config-dir", a.Dir, "agent", "run"}
	if o.Testnet != "" {
		args = append(args, "--testnet", o.Testnet)
	}
	for _, b := range o.Bootstrap {
		args = append(args, "--bootstrap", b)
	}
	if o.Verbose {
		args = append(args, "-vv")
	}
	logf, err := os.OpenFile(a.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(o.Bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	ownProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cluster: start %s: %w", a.Name, err)
	}
	a.cmd, a.exited = cmd, make(chan struct{})
	go func() {
		a.err = cmd.Wait()
		logf.Close()
		close(a.exited)
	}()
	return nil
}

// NewAgent prepares and starts an agent.
func NewAgent(o AgentOptions) (*Agent, error) {
	a, err := Prepare(o)
	if err != nil {
		return nil, err
	}
	return a, a.Start(o)
}

// PID is the agent's process ID.
func (a *Agent) PID() int {
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Exited is closed when the process has exited.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

// WaitReady waits until the agent reports ready (onion service published,
// or listening in direct mode).
func (a *Agent) WaitReady(ctx context.Context) (localapi.Status, error) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-a.exited:
			return localapi.Status{}, fmt.Errorf("cluster: agent %s exited (%v):\n%s", a.Name, a.err, a.Tail(20))
		case <-ctx.Done():
			return localapi.Status{}, fmt.Errorf("cluster: agent %s not ready: %w\n%s", a.Name, ctx.Err(), a.Tail(20))
		case <-tick.C:
		}
		st, err := a.Client.Status(ctx)
		if err == nil && st.Ready {
			return st, nil
		}
	}
}

// Stop asks the agent to shut down and waits; it kills the process group
// if that takes too long.
func (a *Agent) Stop(ctx context.Context) error {
	if a.cmd == nil {
		return nil
	}
	select {
	case <-a.exited:
		return nil
	default:
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := a.Client.Shutdown(sctx)
	cancel()
	if err != nil {
		terminate(a.cmd.Process)
	}
	select {
	case <-a.exited:
		return nil
	case <-time.After(15 * time.Second):
	case <-ctx.Done():
	}
	platform.KillGroup(a.cmd.Process.Pid)
	<-a.exited
	return errors.New("cluster: agent " + a.Name + " did not stop in time; killed")
}

// Kill kills the agent (and its process group) at once.
func (a *Agent) Kill() {
	if a.cmd == nil {
		return
	}
	platform.KillGroup(a.cmd.Process.Pid)
	<-a.exited
}

// Tail returns the last n lines of the agent's log.
func (a *Agent) Tail(n int) string { return TailFile(a.Log, n) }

// TorTail returns the last n lines of the log of the agent's own tor
// (notice level), which says why a circuit or an onion service failed.
func (a *Agent) TorTail(n int) string {
	return TailFile(filepath.Join(a.Dir, "tor-data", "tor.log"), n)
}

// TailFile returns the last n lines of a log file, indented for a test log.
func TailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// TorPID returns the PID of the agent's own tor, from its data directory.
func (a *Agent) TorPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(a.Dir, "tor-data", "tor.pid"))
	if err != nil {
		return 0, err
	}
	var pid int
	_, err = fmt.Sscan(string(b), &pid)
	return pid, err
}

// TrustEachOther gives every agent read and write roles in every other
// agent's trust list, as `mmogit trust add` would: the demo's and tests'
// agents are one party's, so they share everything.
func TrustEachOther(agents ...*Agent) error {
	for _, a := range agents {
		for _, b := range agents {
			if a == b {
				continue
			}
			alias := strings.Join(strings.Fields(b.Name), "-")
			if _, err := trust.Set(a.Dir, b.ID.Public, true, true, alias, "cluster"); err != nil {
				return fmt.Errorf("cluster: %s trusts %s: %w", a.Name, b.Name, err)
			}
		}
	}
	return nil
}
