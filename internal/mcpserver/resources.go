package mcpserver

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/mmogit/mmogit/internal/memory"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// memoryURI prefixes a message ID to name it as a resource.
const memoryURI = "mmogit://memory/"

// maxResources bounds resources/list: the newest messages in scope.
const maxResources = 100

func (s *server) addResources(srv *mcp.Server) {
	srv.AddResourceTemplate(&mcp.ResourceTemplate{
		Name:        "memory",
		Title:       "A stored message",
		Description: "A signed message by its ID, as the show tool returns it (decrypted when addressed to you).",
		MIMEType:    "application/json",
		URITemplate: memoryURI + "{id}",
	}, s.readResource)
}

// listResources serves resources/list: the newest messages of this agent
// and its trusted peers.
func (s *server) listResources(ctx context.Context) (*mcp.ListResourcesResult, error) {
	msgs, _, err := s.messages(ctx, false, "", maxResources)
	if err != nil {
		return nil, err
	}
	res := &mcp.ListResourcesResult{Resources: []*mcp.Resource{}}
	for i := len(msgs) - 1; i >= 0; i-- { // newest first
		m := msgs[i]
		desc := "encrypted, not addressed to you"
		if m.Readable {
			desc = summarize(m.Content)
		}
		res.Resources = append(res.Resources, &mcp.Resource{
			URI:         memoryURI + m.ID,
			Name:        memory.ShortID(m.ID),
			Title:       m.Timestamp + " " + m.AuthorLabel,
			Description: desc,
			MIMEType:    "application/json",
		})
	}
	return res, nil
}

// summarize is a one-line preview of a message's content.
func summarize(content string) string {
	if m, err := memory.ParseMemory(content); err == nil {
		content = string(m.Memory.Type) + ": " + m.Memory.Text()
	}
	content = strings.Join(strings.Fields(content), " ")
	if r := []rune(content); len(r) > 120 {
		content = string(r[:120]) + "…"
	}
	return content
}

func (s *server) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, memoryURI)
	if !ok || !memory.IsID(id) {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	sc, err := s.newScope(true, "")
	if err != nil {
		return nil, err
	}
	rd, err := s.newReader()
	if err != nil {
		return nil, err
	}
	st, err := s.openStore(false)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	entries, err := st.All(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.ID != id {
			continue
		}
		b, err := json.MarshalIndent(messageOutFor(e, rd, sc), "", "  ")
		if err != nil {
			return nil, err
		}
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
	}
	return nil, mcp.ResourceNotFoundError(uri)
}
