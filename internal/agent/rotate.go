package agent

import (
	"context"
	"errors"

	"github.com/mmogit/mmogit/internal/localapi"
)

// Rotate implements localapi.Backend. Per-peer stream isolation is the
// real defence against correlation; NEWNYM additionally moves new streams
// to fresh circuits (and drops cached onion descriptors).
func (a *Agent) Rotate(ctx context.Context) (localapi.RotateResult, error) {
	if a.tor == nil {
		return localapi.RotateResult{}, &kindError{kind: "bad_request", err: errors.New("agent: direct mode has no tor circuits to rotate")}
	}
	d, err := a.tor.rotate(ctx)
	if err != nil {
		return localapi.RotateResult{}, wrapKind(err)
	}
	return localapi.RotateResult{DeferredMs: ms(d)}, nil
}
