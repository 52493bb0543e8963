package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		kind string
	}{
		{usagef("bad"), "usage"},
		{fmt.Errorf("wrapped: %w", &localapi.NotRunningError{Socket: "/x/agent.sock", Err: errors.New("refused")}), "not_running"},
		{&localapi.APIError{Msg: "gone", Kind: "onion_unreachable"}, "onion_unreachable"},
		{&localapi.APIError{Msg: "?"}, "error"},
		{fmt.Errorf("sync: %w", context.DeadlineExceeded), "timeout"},
		{errors.New("disk on fire"), "error"},
	}
	for _, tc := range tests {
		if got := classify(tc.err).kind; got != tc.kind {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.kind)
		}
	}
}

// TestPanicIsToolError: a handler that panics fails its call; the server
// goes on.
func TestPanicIsToolError(t *testing.T) {
	s := &server{log: discard()}
	srv := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	addTool(s, srv, "boom", "panics", func(context.Context, struct{}) (struct{}, error) { panic("kaboom") })
	addTool(s, srv, "fine", "works", func(context.Context, struct{}) (struct{ OK bool }, error) { return struct{ OK bool }{true}, nil })
	srv.AddReceivingMiddleware(s.middleware)
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "boom"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if !res.IsError || !strings.Contains(string(b), "kaboom") || !strings.Contains(string(b), `"kind":"error"`) {
		t.Errorf("panic became %+v %s", res, b)
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fine"}); err != nil || res.IsError {
		t.Errorf("after a panic: %v %+v", err, res)
	}
}
