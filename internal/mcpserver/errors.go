package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/mmogit/mmogit/internal/seal"
	"github.com/mmogit/mmogit/internal/trust"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Error kinds besides the agent's (localapi.Error): the CLI's --json kinds.
const (
	kindUsage      = "usage"       // bad arguments: fix the call
	kindNotRunning = "not_running" // no agent: `mmogit tor start`
	kindError      = "error"       // anything else
)

// toolError is a failed tool call with its kind.
type toolError struct {
	kind string
	err  error
}

func (e *toolError) Error() string { return e.err.Error() }
func (e *toolError) Unwrap() error { return e.err }

// errorOut is the structured content of a failed call, as the CLI prints
// a failure under --json.
type errorOut struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// usagef is a bad-argument error.
func usagef(format string, args ...any) error {
	return &toolError{kind: kindUsage, err: fmt.Errorf(format, args...)}
}

// classify gives err its kind.
func classify(err error) *toolError {
	var te *toolError
	var ae *localapi.APIError
	switch {
	case errors.As(err, &te):
		return te
	case localapi.IsNotRunning(err):
		return &toolError{kindNotRunning, err}
	case errors.As(err, &ae):
		kind := ae.Kind
		if kind == "" {
			kind = kindError
		}
		return &toolError{kind, err}
	case errors.Is(err, context.DeadlineExceeded):
		return &toolError{"timeout", err}
	case errors.Is(err, memory.ErrTooLarge), errors.Is(err, seal.ErrTooLarge), errors.Is(err, memory.ErrUnknownType),
		errors.Is(err, trust.ErrUnknown), errors.Is(err, invite.ErrBad):
		return &toolError{kindUsage, err}
	}
	return &toolError{kindError, err}
}

// addTool registers a typed tool whose errors become tool results with a
// kind, and whose panics are caught instead of ending the server.
func addTool[In, Out any](s *server, srv *mcp.Server, name, desc string, fn func(context.Context, In) (Out, error)) {
	mcp.AddTool(srv, &mcp.Tool{Name: name, Description: desc, Annotations: annotations(name)},
		func(ctx context.Context, _ *mcp.CallToolRequest, in In) (_ *mcp.CallToolResult, out Out, err error) {
			defer func() {
				if p := recover(); p != nil {
					s.log.Error("tool panicked", "tool", name, "panic", p)
					err = &toolError{kindError, fmt.Errorf("%s: internal error: %v", name, p)}
				}
			}()
			out, err = fn(ctx, in)
			if err != nil {
				s.log.Debug("tool failed", "tool", name, "err", err)
				return nil, out, classify(err)
			}
			return nil, out, nil
		})
}

// middleware gives every failed tool call its {"error", "kind"} (the SDK's
// own argument checks become kind usage) and serves resources/list.
func (s *server) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "resources/list" {
			return s.listResources(ctx)
		}
		res, err := next(ctx, method, req)
		if r, ok := res.(*mcp.CallToolResult); ok && err == nil && r != nil && r.IsError {
			kind := kindUsage // the SDK's schema and decoding checks
			msg := ""
			var te *toolError
			if e := r.GetError(); errors.As(e, &te) {
				kind, msg = te.kind, te.Error()
			} else if e != nil {
				msg = "invalid arguments: " + e.Error()
			} else {
				msg = "invalid arguments"
			}
			out := errorOut{Error: msg, Kind: kind}
			b, _ := json.Marshal(out)
			r.StructuredContent = out
			r.Content = []mcp.Content{&mcp.TextContent{Text: string(b)}}
		}
		return res, err
	}
}

// readOnly are the tools that change nothing, local or remote.
var readOnly = map[string]bool{"recall": true, "show": true, "whoami": true, "trust_list": true, "status": true, "discover": true}

// network are the tools that reach other agents.
var network = map[string]bool{"discover": true, "connect": true, "sync": true, "advertise": true, "join": true}

// annotations are hints for the host about what a tool does.
func annotations(name string) *mcp.ToolAnnotations {
	destructive := name == "trust_remove"
	openWorld := network[name]
	return &mcp.ToolAnnotations{
		ReadOnlyHint:    readOnly[name],
		DestructiveHint: &destructive,
		OpenWorldHint:   &openWorld,
		IdempotentHint:  readOnly[name] || name == "trust_add" || name == "trust_remove",
	}
}
