package torctl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// DefaultEventBuffer is the number of events a subscriber may fall behind
// before further events to it are dropped.
const DefaultEventBuffer = 256

// Event is one asynchronous (650) reply.
//
// control-spec §4.1: "650" SP EventName [SP Text] CRLF, possibly preceded by
// "650-" and "650+" lines for multi-line events.
type Event struct {
	Name  string // e.g. "HS_DESC", "STATUS_CLIENT"
	Text  string // the first line after the event name
	Reply *Reply // every line, for multi-line events
}

// Subscription receives the events it was created for. Its channel is
// closed by Cancel or when the connection closes.
type Subscription struct {
	c       *Conn
	names   map[string]bool
	ch      chan Event
	dropped atomic.Uint64
	closed  bool // guarded by c.mu
}

// Events returns the channel events are delivered on.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Dropped returns how many events were dropped because the subscriber's
// buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Cancel stops delivery and closes the channel. It does not talk to tor:
// the SETEVENTS list shrinks at the next Subscribe or SetEvents call.
func (s *Subscription) Cancel() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.c.subs != nil {
		delete(s.c.subs, s)
	}
	s.closeLocked()
}

func (s *Subscription) closeLocked() {
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

// Subscribe asks tor for the named events (SETEVENTS with the union of all
// subscriptions and SetEvents names) and returns a subscription receiving
// them. The subscription is registered before SETEVENTS is sent, so no event
// that follows the reply is missed.
func (c *Conn) Subscribe(ctx context.Context, names ...string) (*Subscription, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("torctl: subscribe: no event names")
	}
	s := &Subscription{c: c, names: make(map[string]bool), ch: make(chan Event, DefaultEventBuffer)}
	for _, n := range names {
		if err := checkKeyword(n); err != nil {
			return nil, fmt.Errorf("torctl: subscribe: %w", err)
		}
		s.names[strings.ToUpper(n)] = true
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	if err := c.syncEvents(ctx); err != nil {
		s.Cancel()
		return nil, fmt.Errorf("torctl: subscribe: %w", err)
	}
	return s, nil
}

// SetEvents sets the events this controller wants beyond those of its
// subscriptions (SETEVENTS). Events requested only here are not delivered
// anywhere; it exists for side effects of enabling an event.
func (c *Conn) SetEvents(ctx context.Context, names ...string) error {
	set := make(map[string]bool)
	for _, n := range names {
		if err := checkKeyword(n); err != nil {
			return fmt.Errorf("torctl: setevents: %w", err)
		}
		set[strings.ToUpper(n)] = true
	}
	c.mu.Lock()
	c.setEvents = set
	c.mu.Unlock()
	return c.syncEvents(ctx)
}

// syncEvents sends SETEVENTS if the union of wanted events changed.
func (c *Conn) syncEvents(ctx context.Context) error {
	c.evmu.Lock()
	defer c.evmu.Unlock()
	c.mu.Lock()
	want := make(map[string]bool)
	for n := range c.setEvents {
		want[n] = true
	}
	for s := range c.subs {
		for n := range s.names {
			want[n] = true
		}
	}
	list := make([]string, 0, len(want))
	for n := range want {
		list = append(list, n)
	}
	slices.Sort(list)
	arg := strings.Join(list, " ")
	same := arg == c.sentEvts
	c.mu.Unlock()
	if same {
		return nil
	}
	line := "SETEVENTS"
	if arg != "" {
		line += " " + arg
	}
	if _, err := c.Do(ctx, line); err != nil {
		return err
	}
	c.mu.Lock()
	c.sentEvts = arg
	c.mu.Unlock()
	return nil
}

// eventOf turns an asynchronous reply into an Event.
func eventOf(r *Reply) Event {
	first := ""
	if len(r.Lines) > 0 {
		first = r.Lines[0].Text
	}
	name, text, _ := strings.Cut(first, " ")
	return Event{Name: strings.ToUpper(name), Text: text, Reply: r}
}

// dispatch delivers an event to every interested subscriber without
// blocking: the reader goroutine must stay free to deliver replies.
func (c *Conn) dispatch(r *Reply) {
	ev := eventOf(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		if !s.names[ev.Name] {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}
