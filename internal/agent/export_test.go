package agent

import (
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

// SetSyncIdle shortens the sync idle timeout; call before Run.
func SetSyncIdle(a *Agent, d time.Duration) { a.syncIdle = d }

// StoreOf is the agent's memory store.
func StoreOf(a *Agent) *memory.Store { return a.store }
