package trust

import (
	"time"

	"github.com/mmogit/mmogit/internal/memory"
)

// TakeForTest exposes Quota.take with a chosen clock.
func TakeForTest(q *Quota, peer string, msgs []memory.Message, now time.Time) ([]memory.Message, int) {
	return q.take(peer, msgs, now)
}
