package statuspage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
)

// State is GET /api/state: everything the page shows, in one poll.
type State struct {
	// Agent is the agent's status; nil when no agent answers, and then
	// AgentError says why.
	Agent      *localapi.Status `json:"agent,omitempty"`
	AgentError string           `json:"agent_error,omitempty"`
	Peers      []localapi.Peer  `json:"peers"`
	PeersError string           `json:"peers_error,omitempty"`
	Discovery  []Discovery      `json:"discovery"`
	Memories   MemoryList       `json:"memories"`
	Now        time.Time        `json:"now"`
}

// Discovery is the last lookup of one service.
type Discovery struct {
	Service string                   `json:"service"`
	Ads     []localapi.Advertisement `json:"ads"`
	At      time.Time                `json:"at,omitzero"`
	Running bool                     `json:"running"`
	Error   string                   `json:"error,omitempty"`
}

// retryFailed is how soon a failed lookup runs again.
const retryFailed = 10 * time.Second

// maxMemories bounds the memories one poll carries.
const maxMemories = 200

func (s *Server) api() map[string]http.Handler {
	j := func(h func(r *http.Request) (any, error)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			v, err := h(r)
			if err != nil {
				e := localapi.Error{Error: err.Error()}
				code := http.StatusBadGateway
				var ae *localapi.APIError
				var bad badRequest
				switch {
				case errors.As(err, &bad):
					code = http.StatusBadRequest
					e.Kind = "bad_request"
				case errors.As(err, &ae):
					e.Kind = ae.Kind
				}
				w.WriteHeader(code)
				json.NewEncoder(w).Encode(e)
				return
			}
			json.NewEncoder(w).Encode(v)
		})
	}
	return map[string]http.Handler{
		"GET /api/state": j(func(r *http.Request) (any, error) {
			return s.state(r.Context(), r.URL.Query().Get("q")), nil
		}),
		"POST /api/connect": j(func(r *http.Request) (any, error) {
			var req struct{ Target string }
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			if req.Target = strings.TrimSpace(req.Target); req.Target == "" {
				return nil, badRequest("give an onion address or multiaddr to connect to")
			}
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Minute)
			defer cancel()
			return s.agent.Connect(ctx, req.Target)
		}),
		"POST /api/sync": j(func(r *http.Request) (any, error) {
			var req struct{ Peer string }
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
			defer cancel()
			res, err := s.agent.Sync(ctx, strings.TrimSpace(req.Peer))
			if res == nil && err == nil {
				res = []localapi.SyncResult{}
			}
			return res, err
		}),
		"POST /api/advertise": j(func(r *http.Request) (any, error) {
			var req struct{ Services string }
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			services := splitList(req.Services)
			if len(services) == 0 {
				return nil, badRequest("give at least one service to advertise")
			}
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Minute)
			defer cancel()
			ad, err := s.agent.Advertise(ctx, services)
			if err == nil {
				for _, svc := range ad.Services {
					s.disc.watch(svc)
				}
			}
			return ad, err
		}),
		"POST /api/discover": j(func(r *http.Request) (any, error) {
			var req struct{ Service string }
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			svc := strings.TrimSpace(req.Service)
			if svc == "" {
				return nil, badRequest("give a service to discover")
			}
			s.disc.watch(svc)
			s.disc.kick()
			return map[string]string{"watching": svc}, nil
		}),
		"POST /api/trust": j(func(r *http.Request) (any, error) {
			var req struct {
				Peer        string
				Read, Write bool
				Remove      bool
			}
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			if req.Peer = strings.TrimSpace(req.Peer); req.Peer == "" {
				return nil, badRequest("give the peer to trust")
			}
			if req.Remove {
				return s.local.Untrust(r.Context(), req.Peer)
			}
			return s.local.Trust(r.Context(), req.Peer, req.Read, req.Write)
		}),
		"POST /api/invite": j(func(r *http.Request) (any, error) {
			var req struct {
				Read, Write bool
				Expires     string
			}
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			ttl := 24 * time.Hour
			if req.Expires != "" {
				d, err := time.ParseDuration(req.Expires)
				if err != nil || d <= 0 {
					return nil, badRequest(fmt.Sprintf("expires %q: want a positive duration such as 24h", req.Expires))
				}
				ttl = d
			}
			return s.local.Invite(r.Context(), req.Read, req.Write, ttl)
		}),
	}
}

// state gathers one poll. Each part fails on its own: a page with the
// agent down still shows the memories.
func (s *Server) state(ctx context.Context, q string) State {
	st := State{Now: time.Now().UTC(), Peers: []localapi.Peer{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if as, err := s.agent.Status(ctx); err != nil {
		st.AgentError = err.Error()
	} else {
		st.Agent = &as
		for _, svc := range as.Services {
			s.disc.watch(svc)
		}
		if p, err := s.agent.Peers(ctx); err != nil {
			st.PeersError = err.Error()
		} else if p != nil {
			st.Peers = p
		}
	}
	st.Discovery = s.disc.list()
	m, err := s.local.Memories(ctx, q, maxMemories)
	if err != nil {
		m.Error = err.Error()
	}
	if m.Items == nil {
		m.Items = []Memory{}
	}
	st.Memories = m
	return st
}

type badRequest string

func (e badRequest) Error() string { return "bad request: " + string(e) }

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(err.Error())
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

// discoveries runs DHT lookups for the services the page watches (the
// ones the agent advertises and the ones asked for on the page), one at
// a time, again every refresh interval, and keeps the last result of
// each: a poll never waits on a lookup.
type discoveries struct {
	agent   Agent
	log     *slog.Logger
	refresh time.Duration
	wake    chan struct{}

	mu   sync.Mutex
	byID map[string]*Discovery
}

func newDiscoveries(a Agent, log *slog.Logger) *discoveries {
	return &discoveries{agent: a, log: log, refresh: time.Minute, wake: make(chan struct{}, 1), byID: map[string]*Discovery{}}
}

func (d *discoveries) watch(svc string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.byID[svc]; !ok {
		d.byID[svc] = &Discovery{Service: svc, Ads: []localapi.Advertisement{}}
		d.kickLocked()
	}
}

func (d *discoveries) kick() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.kickLocked()
}

func (d *discoveries) kickLocked() {
	// A lookup asked for now runs now, even if done a moment ago.
	for _, x := range d.byID {
		if !x.Running {
			x.At = time.Time{}
		}
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *discoveries) list() []Discovery {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Discovery, 0, len(d.byID))
	for _, x := range d.byID {
		out = append(out, *x)
	}
	slices.SortFunc(out, func(a, b Discovery) int { return strings.Compare(a.Service, b.Service) })
	return out
}

// due returns a service whose last lookup is older than the refresh.
func (d *discoveries) due(now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range d.byID {
		if !x.Running && now.Sub(x.At) >= d.refresh {
			x.Running = true
			return x.Service
		}
	}
	return ""
}

func (d *discoveries) run(ctx context.Context) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		for svc := d.due(time.Now()); svc != "" && ctx.Err() == nil; svc = d.due(time.Now()) {
			lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			res, err := d.agent.Discover(lctx, svc)
			cancel()
			d.mu.Lock()
			x := d.byID[svc]
			x.Running, x.At, x.Error = false, time.Now().UTC(), ""
			if err != nil {
				x.Error = err.Error()
				// Soon again, not in a minute: the agent may still be
				// starting, or its DHT still empty.
				x.At = x.At.Add(retryFailed - d.refresh)
				d.log.Debug("status page: discover failed", "service", svc, "err", err)
			} else {
				x.Ads = res.Ads
				if x.Ads == nil {
					x.Ads = []localapi.Advertisement{}
				}
			}
			d.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-tick.C:
		}
	}
}
