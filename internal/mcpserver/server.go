// Package mcpserver is `mmogit mcp`: a Model Context Protocol server on
// stdio that lets an AI agent use mmogit as tools.
//
// It exposes
//
//   - memory tools, served from the config directory without an agent:
//     remember, recall, post, show, whoami;
//   - trust and invite tools, also local: trust_list, trust_add,
//     trust_remove, invite;
//   - network tools, forwarded to the running agent over its local API
//     (package localapi): status, discover, connect, sync, advertise, join.
//     Without an agent they fail at once with a hint to run `mmogit tor start`;
//   - resources mmogit://memory/<message id>: the newest messages of this
//     identity and its trusted peers, decrypted when addressed to it.
//
// Results have the shapes of the CLI's --json output (lists are wrapped in
// an object, since MCP structured content is an object); failures are tool
// results with isError and {"error", "kind"} as structured content, kind
// being the CLI's JSON error kind (usage, not_running, an agent kind such as
// onion_unreachable, or error).
//
// The server reads the identity's seed in the config directory: to sign
// what it writes, and to decrypt the memories addressed to it. It writes
// only MCP JSON-RPC on stdout; logs go to the logger (stderr in the CLI).
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/memory"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Options configure a server.
type Options struct {
	// ConfigDir is mmogit's configuration directory (seed, messages,
	// trust list, agent socket).
	ConfigDir string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// Version is reported to clients as the server's version.
	Version string
}

// maxFrame bounds one JSON-RPC frame read from stdin. A memory holds at
// most memory.MaxContentBytes, so a few times that is plenty; a bigger
// frame is dropped (see guard).
const maxFrame = 8 << 20

// server holds the state the handlers share.
type server struct {
	dir string
	log *slog.Logger
	api *localapi.Client

	mu    sync.Mutex
	store *memory.Store // opened on first use
}

// New returns an MCP server with mmogit's tools and resources.
func New(opts Options) *mcp.Server {
	log := opts.Logger
	if log == nil {
		log = discard()
	}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	s := &server{dir: opts.ConfigDir, log: log, api: &localapi.Client{Dir: opts.ConfigDir}}
	srv := mcp.NewServer(&mcp.Implementation{Name: "mmogit", Title: "mmogit: signed, encrypted agent memory", Version: version}, &mcp.ServerOptions{
		Logger: log,
		Instructions: "mmogit keeps your memories as signed messages in a local git repository, encrypted to you by default, " +
			"and syncs them with trusted agents over Tor. Use remember to store a memory and recall to find memories again. " +
			"Network tools (status, sync, connect, discover, advertise, join) need the mmogit agent running (`mmogit tor start`).",
	})
	s.addMemoryTools(srv)
	s.addTrustTools(srv)
	s.addNetworkTools(srv)
	s.addResources(srv)
	srv.AddReceivingMiddleware(s.middleware)
	return srv
}

// Run serves MCP on stdin and stdout until the client disconnects or ctx
// ends.
func Run(ctx context.Context, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = discard()
	}
	t := guardedTransport(os.Stdin, os.Stdout, maxFrame, log)
	if err := New(opts).Run(ctx, t); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("mcp: %w", err)
	}
	return nil
}

// openStore returns the memory repository. With create false and no
// repository yet, it returns nil and no error.
func (s *server) openStore(create bool) (*memory.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	dir := filepath.Join(s.dir, "messages")
	if !create {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	st, err := memory.Open(dir)
	if err != nil {
		return nil, err
	}
	s.store = st
	return st, nil
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
