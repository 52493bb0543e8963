package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Backend is what the agent implements for the API. Errors that implement
// Kinder are reported with their kind so the CLI can branch on it.
type Backend interface {
	Status(ctx context.Context) Status
	Connect(ctx context.Context, req ConnectRequest) (ConnectResult, error)
	// Sync syncs; progress, if not nil, is called as messages arrive.
	Sync(ctx context.Context, req SyncRequest, progress func(SyncProgress)) ([]SyncResult, error)
	Peers(ctx context.Context) ([]Peer, error)
	Advertise(ctx context.Context, req AdvertiseRequest) (Advertisement, error)
	Discover(ctx context.Context, service string) (DiscoverResult, error)
	// Join redeems an invite with the inviting agent.
	Join(ctx context.Context, req JoinRequest) (JoinResult, error)
	// Rotate asks tor for new circuits (SIGNAL NEWNYM).
	Rotate(ctx context.Context) (RotateResult, error)
	// Shutdown asks the agent to stop; it returns at once.
	Shutdown()
}

// Kinder is implemented by errors that carry a machine-readable kind.
type Kinder interface{ Kind() string }

// ErrAlreadyRunning means another agent serves the socket.
var ErrAlreadyRunning = errors.New("localapi: an agent is already running for this config dir (stop it with `mmogit tor stop`)")

// Server serves the API on a unix socket.
type Server struct {
	b    Backend
	log  *slog.Logger
	http *http.Server
	ln   net.Listener
	path string
}

// NewServer returns a server for b. log may be nil.
func NewServer(b Backend, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, log: log}
	mux := http.NewServeMux()
	for pattern, h := range s.handlers() {
		mux.Handle(pattern, s.wrap(h))
	}
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// handlers is the name → handler table.
func (s *Server) handlers() map[string]func(w http.ResponseWriter, r *http.Request) (any, error) {
	return map[string]func(w http.ResponseWriter, r *http.Request) (any, error){
		"GET /v1/status": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return s.b.Status(r.Context()), nil
		},
		"POST /v1/connect": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req ConnectRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			return s.b.Connect(r.Context(), req)
		},
		"POST /v1/sync": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req SyncRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			if r.URL.Query().Get("progress") == "1" {
				s.syncStream(w, r, req)
				return streamed{}, nil
			}
			return s.b.Sync(r.Context(), req, nil)
		},
		"GET /v1/peers": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return s.b.Peers(r.Context())
		},
		"POST /v1/advertise": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req AdvertiseRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			return s.b.Advertise(r.Context(), req)
		},
		"GET /v1/discover": func(w http.ResponseWriter, r *http.Request) (any, error) {
			svc := r.URL.Query().Get("service")
			if svc == "" {
				return nil, badRequest("missing service")
			}
			return s.b.Discover(r.Context(), svc)
		},
		"POST /v1/join": func(w http.ResponseWriter, r *http.Request) (any, error) {
			var req JoinRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			if req.Invite == "" {
				return nil, badRequest("missing invite")
			}
			return s.b.Join(r.Context(), req)
		},
		"POST /v1/rotate": func(w http.ResponseWriter, r *http.Request) (any, error) {
			return s.b.Rotate(r.Context())
		},
		"POST /v1/shutdown": func(w http.ResponseWriter, r *http.Request) (any, error) {
			s.b.Shutdown()
			return struct{}{}, nil
		},
	}
}

// streamed marks a reply the handler has already written.
type streamed struct{}

// syncStream runs a sync and writes SyncEvent lines as it goes, so the CLI
// can draw a progress bar for large transfers.
func (s *Server) syncStream(w http.ResponseWriter, r *http.Request, req SyncRequest) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex // mu serialises writes from concurrent peer syncs
	write := func(ev SyncEvent) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(w).Encode(ev)
		if flusher != nil {
			flusher.Flush()
		}
	}
	var last time.Time
	res, err := s.b.Sync(r.Context(), req, func(p SyncProgress) {
		// At most ~10 lines a second: progress is for eyes.
		if now := time.Now(); now.Sub(last) > 100*time.Millisecond || p.Received >= p.Wanted {
			last = now
			write(SyncEvent{Progress: &p})
		}
	})
	if err != nil {
		e := Error{Error: err.Error()}
		var k Kinder
		if errors.As(err, &k) {
			e.Kind = k.Kind()
		}
		write(SyncEvent{Error: &e})
		return
	}
	if res == nil {
		res = []SyncResult{}
	}
	write(SyncEvent{Results: res})
}

type badRequest string

func (e badRequest) Error() string { return "bad request: " + string(e) }
func (e badRequest) Kind() string  { return "bad_request" }

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(err.Error())
	}
	return nil
}

func (s *Server) wrap(h func(w http.ResponseWriter, r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Mmogit-Version", Version)
		w.Header().Set("Content-Type", "application/json")
		v, err := h(w, r)
		if _, ok := v.(streamed); ok {
			return
		}
		if err != nil {
			e := Error{Error: err.Error()}
			code := http.StatusInternalServerError
			var k Kinder
			if errors.As(err, &k) {
				e.Kind = k.Kind()
				if e.Kind == "bad_request" {
					code = http.StatusBadRequest
				}
			}
			s.log.Debug("api error", "path", r.URL.Path, "err", err)
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(e)
			return
		}
		json.NewEncoder(w).Encode(v)
	})
}

// Listen creates the socket <dir>/agent.sock with mode 0600. A socket left
// by a dead agent is removed; a live one means another agent is running.
func (s *Server) Listen(dir string) error {
	p := filepath.Join(dir, SocketName)
	if _, err := os.Lstat(p); err == nil {
		c, err := net.DialTimeout("unix", p, time.Second)
		if err == nil {
			c.Close()
			return ErrAlreadyRunning
		}
		// Nobody answers: a stale socket from an agent that died.
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("localapi: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("localapi: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("localapi: %w", err)
	}
	s.ln, s.path = ln, p
	return nil
}

// Serve serves until ctx ends, then closes the socket.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		return errors.New("localapi: Serve before Listen")
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.http.Shutdown(sctx)
	}()
	err := s.http.Serve(s.ln)
	os.Remove(s.path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
