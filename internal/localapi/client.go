package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"sync"
)

// Client talks to the agent of one config directory. It is safe for
// concurrent use; Dir must not change after the first call.
type Client struct {
	// Dir is the config directory holding agent.sock.
	Dir string

	once sync.Once
	hc   *http.Client
}

// NotRunningError means no agent answers on the socket.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("no mmogit agent is running for %s (start it with `mmogit tor start`): %v", filepath.Dir(e.Socket), e.Err)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// IsNotRunning reports whether err means the agent is not running.
func IsNotRunning(err error) bool {
	var nr *NotRunningError
	return errors.As(err, &nr)
}

// APIError is an error reply from the agent.
type APIError struct {
	Status int
	Msg    string
	Kind   string
}

func (e *APIError) Error() string { return e.Msg }

func (c *Client) socket() string { return filepath.Join(c.Dir, SocketName) }

func (c *Client) client() *http.Client {
	c.once.Do(func() {
		sock := c.socket()
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}}
	})
	return c.hc
}

// send makes one request and returns a 2xx response (body open) or the
// typed error: agent not running, version skew, or the agent's error reply.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mmogit-agent"+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Mmogit-Version", Version)
	resp, err := c.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &NotRunningError{Socket: c.socket(), Err: err}
	}
	if v := resp.Header.Get("Mmogit-Version"); v != Version {
		resp.Body.Close()
		return nil, fmt.Errorf("localapi: agent speaks API version %q, this CLI %q: restart the agent (`mmogit tor stop; mmogit tor start`)", v, Version)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e Error
		json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		return nil, &APIError{Status: resp.StatusCode, Msg: e.Error, Kind: e.Kind}
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("localapi: decode %s reply: %w", path, err)
	}
	return nil
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, "GET", "/v1/status", nil, &s)
}

// Connect connects to a peer and pings it.
func (c *Client) Connect(ctx context.Context, target string) (ConnectResult, error) {
	var r ConnectResult
	return r, c.do(ctx, "POST", "/v1/connect", ConnectRequest{Target: target}, &r)
}

// Sync syncs with one peer, or every known peer when peer is empty.
func (c *Client) Sync(ctx context.Context, peer string) ([]SyncResult, error) {
	var r []SyncResult
	return r, c.do(ctx, "POST", "/v1/sync", SyncRequest{Peer: peer}, &r)
}

// SyncWithProgress is Sync, calling progress as messages arrive.
func (c *Client) SyncWithProgress(ctx context.Context, peer string, progress func(SyncProgress)) ([]SyncResult, error) {
	var final []SyncResult
	var failed *Error
	err := c.stream(ctx, "/v1/sync?progress=1", SyncRequest{Peer: peer}, func(ev SyncEvent) {
		switch {
		case ev.Progress != nil && progress != nil:
			progress(*ev.Progress)
		case ev.Error != nil:
			failed = ev.Error
		case ev.Results != nil:
			final = ev.Results
		}
	})
	if err != nil {
		return nil, err
	}
	if failed != nil {
		return nil, &APIError{Status: http.StatusInternalServerError, Msg: failed.Error, Kind: failed.Kind}
	}
	if final == nil {
		return nil, fmt.Errorf("localapi: sync stream ended without a result")
	}
	return final, nil
}

// stream POSTs in and calls each for every JSON line of the reply.
func (c *Client) stream(ctx context.Context, path string, in any, each func(SyncEvent)) error {
	resp, err := c.send(ctx, "POST", path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev SyncEvent
		if err := dec.Decode(&ev); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("localapi: sync stream: %w", err)
		}
		each(ev)
	}
}

// Peers lists known peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var r []Peer
	return r, c.do(ctx, "GET", "/v1/peers", nil, &r)
}

// Advertise publishes services and keeps them published.
func (c *Client) Advertise(ctx context.Context, services []string) (Advertisement, error) {
	var r Advertisement
	return r, c.do(ctx, "POST", "/v1/advertise", AdvertiseRequest{Services: services}, &r)
}

// Discover finds verified advertisements of agents offering service.
func (c *Client) Discover(ctx context.Context, service string) (DiscoverResult, error) {
	var r DiscoverResult
	return r, c.do(ctx, "GET", "/v1/discover?service="+url.QueryEscape(service), nil, &r)
}

// Join redeems an invite line with the inviting agent.
func (c *Client) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	var r JoinResult
	return r, c.do(ctx, "POST", "/v1/join", req, &r)
}

// Rotate asks the agent's tor for new circuits.
func (c *Client) Rotate(ctx context.Context) (RotateResult, error) {
	var r RotateResult
	return r, c.do(ctx, "POST", "/v1/rotate", struct{}{}, &r)
}

// Shutdown asks the agent to stop.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.do(ctx, "POST", "/v1/shutdown", struct{}{}, nil)
}
