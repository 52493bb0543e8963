package agent

import (
	"time"

	"github.com/mmogit/mmogit/internal/discovery"
	"github.com/mmogit/mmogit/internal/memory"
)

// DiscoveryOf is the agent's discovery, nil until Run has started it.
func DiscoveryOf(a *Agent) *discovery.Discovery {
	if !a.started() {
		return nil
	}
	return a.disc
}

// SetSyncIdle shortens the sync idle timeout; call before Run.
func SetSyncIdle(a *Agent, d time.Duration) { a.syncIdle = d }

// StoreOf is the agent's memory store.
func StoreOf(a *Agent) *memory.Store { return a.store }

// SetDialTimeout sets the host's dial limit (the SOCKS dial gets 5/6 of
// it); call before Run.
func SetDialTimeout(a *Agent, d time.Duration) { a.dialTimeout = d }

// SetRetryWait rescales the waits between connection attempts; call
// before Run.
func SetRetryWait(a *Agent, f func(time.Duration) time.Duration) { a.retryWait = f }
