package torctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// BootstrapStatus is tor's bootstrap progress, from GETINFO
// status/bootstrap-phase or a STATUS_CLIENT BOOTSTRAP event.
type BootstrapStatus struct {
	Severity string // NOTICE or WARN
	Progress int    // 0..100
	Tag      string // e.g. "conn_pt", "done"
	Summary  string
	Warning  string // set on WARN: tor's explanation of the problem
	Reason   string // set on WARN: e.g. "NOROUTE", "TIMEOUT"
}

// Done reports whether bootstrap has finished.
func (s BootstrapStatus) Done() bool { return s.Progress >= 100 }

// ParseBootstrapStatus parses the bootstrap status text (control-spec §5.6
// "BOOTSTRAP"), for example
//
//	NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"
//	WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY="Connecting to a relay"
//	    WARNING="Connection refused" REASON=CONNECTREFUSED COUNT=3 ...
func ParseBootstrapStatus(s string) (BootstrapStatus, error) {
	kv, words, err := KeyValues(s)
	if err != nil {
		return BootstrapStatus{}, fmt.Errorf("torctl: bootstrap status: %w", err)
	}
	if len(words) < 2 || words[1] != "BOOTSTRAP" {
		return BootstrapStatus{}, fmt.Errorf("torctl: bootstrap status: %w: %q", ErrMalformed, truncate(s))
	}
	p, err := strconv.Atoi(kv["PROGRESS"])
	if err != nil || p < 0 || p > 100 {
		return BootstrapStatus{}, fmt.Errorf("torctl: bootstrap status: %w: bad PROGRESS in %q", ErrMalformed, truncate(s))
	}
	return BootstrapStatus{
		Severity: words[0],
		Progress: p,
		Tag:      kv["TAG"],
		Summary:  kv["SUMMARY"],
		Warning:  kv["WARNING"],
		Reason:   kv["REASON"],
	}, nil
}

// BootstrapFromEvent parses a STATUS_CLIENT event; ok is false for
// STATUS_CLIENT events other than BOOTSTRAP.
func BootstrapFromEvent(ev Event) (st BootstrapStatus, ok bool, err error) {
	if ev.Name != "STATUS_CLIENT" {
		return st, false, nil
	}
	f := strings.Fields(ev.Text)
	if len(f) < 2 || f[1] != "BOOTSTRAP" {
		return st, false, nil
	}
	st, err = ParseBootstrapStatus(ev.Text)
	return st, err == nil, err
}

// BootstrapPhase returns GETINFO status/bootstrap-phase.
func (c *Conn) BootstrapPhase(ctx context.Context) (BootstrapStatus, error) {
	m, err := c.GetInfo(ctx, "status/bootstrap-phase")
	if err != nil {
		return BootstrapStatus{}, err
	}
	return ParseBootstrapStatus(m["status/bootstrap-phase"])
}

// HSDescEvent is a parsed HS_DESC event (control-spec §4.1.25):
//
//	"650" SP "HS_DESC" SP Action SP HSAddress SP AuthType SP HsDir
//	        [SP DescriptorID] [SP "REASON=" Reason] ...
type HSDescEvent struct {
	Action  string // REQUESTED, UPLOAD, RECEIVED, UPLOADED, FAILED, ...
	Address string // service ID without ".onion"
	HSDir   string
	Reason  string
}

// ParseHSDesc parses an HS_DESC event.
func ParseHSDesc(ev Event) (HSDescEvent, error) {
	if ev.Name != "HS_DESC" {
		return HSDescEvent{}, fmt.Errorf("torctl: hs_desc: %w: event %s", ErrMalformed, ev.Name)
	}
	args, err := ParseArgs(ev.Text)
	if err != nil {
		return HSDescEvent{}, fmt.Errorf("torctl: hs_desc: %w", err)
	}
	var d HSDescEvent
	var pos []string
	for _, a := range args {
		if a.HasValue {
			if a.Key == "REASON" {
				d.Reason = a.Value
			}
			continue
		}
		pos = append(pos, a.Key)
	}
	if len(pos) < 2 {
		return HSDescEvent{}, fmt.Errorf("torctl: hs_desc: %w: %q", ErrMalformed, truncate(ev.Text))
	}
	d.Action, d.Address = pos[0], pos[1]
	if len(pos) >= 4 {
		d.HSDir = pos[3]
	}
	return d, nil
}

// WaitHSDescUploaded waits on sub (subscribed to HS_DESC before ADD_ONION,
// so no event is missed) for the first "HS_DESC UPLOADED <serviceID>": the
// moment the service is published on at least one HSDir. When ctx ends, the
// error names the last upload failure seen, if any.
func WaitHSDescUploaded(ctx context.Context, sub *Subscription, serviceID string) error {
	serviceID = strings.TrimSuffix(strings.ToLower(serviceID), ".onion")
	var lastFail string
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return fmt.Errorf("torctl: wait for descriptor upload: %w", ErrClosed)
			}
			d, err := ParseHSDesc(ev)
			if err != nil || d.Address != serviceID {
				continue
			}
			switch d.Action {
			case "UPLOADED":
				return nil
			case "FAILED":
				lastFail = d.Reason
			}
		case <-ctx.Done():
			if lastFail != "" {
				return fmt.Errorf("torctl: wait for descriptor upload (last failure %s): %w", lastFail, ctx.Err())
			}
			return fmt.Errorf("torctl: wait for descriptor upload: %w", ctx.Err())
		}
	}
}
