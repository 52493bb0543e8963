package mcpserver

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The SDK's stdio transport ends the session on the first line that is
// not JSON-RPC or is over its frame limit. guard sits in front of it: such
// a line is dropped (and answered with a JSON-RPC error when its id can be
// found), so one bad request does not take the server down.

// codeInvalidRequest is JSON-RPC's Invalid Request error code.
const codeInvalidRequest = -32600

// lockedWriter makes each Write atomic: the SDK writes one whole message
// per Write, and guard's replies go to the same stream.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Close() error { return nil }

// guardedTransport is stdio (in, out) with bad lines filtered out.
func guardedTransport(in io.Reader, out io.Writer, limit int, log *slog.Logger) mcp.Transport {
	w := &lockedWriter{w: out}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(guard(in, pw, w, limit, log)) }()
	return &mcp.IOTransport{Reader: pr, Writer: w, MaxLineLength: limit + 1}
}

// guard copies the JSON-RPC lines of in to pass, and answers the others on
// reply. It returns when in ends (nil at EOF) or pass is closed.
func guard(in io.Reader, pass io.Writer, reply io.Writer, limit int, log *slog.Logger) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var line []byte
	size, over := 0, false
	for {
		chunk, err := br.ReadSlice('\n')
		size += len(chunk)
		if !over {
			if size > limit {
				over = true
				if id, ok := leadingID(line, chunk); ok {
					writeError(reply, id, codeInvalidRequest, fmt.Sprintf("request over the limit of %d bytes", limit))
				}
				line = nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 || over {
			if over {
				log.Warn("dropped an oversized request", "bytes", size, "limit", limit)
			} else if bad, id, why := check(line); bad {
				log.Warn("dropped a malformed request", "why", why)
				if id != nil {
					writeError(reply, id, codeInvalidRequest, "invalid request: "+why)
				}
			} else if _, werr := pass.Write(line); werr != nil {
				return werr
			}
		}
		line, size, over = line[:0], 0, false
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// check reports whether line is not something the SDK can take (one
// JSON-RPC message or a non-empty batch of them), with its id when known.
func check(line []byte) (bad bool, id json.RawMessage, why string) {
	trimmed := trimSpace(line)
	if len(trimmed) == 0 {
		return false, nil, ""
	}
	if !json.Valid(trimmed) {
		return true, nil, "not JSON"
	}
	var batch []json.RawMessage
	if json.Unmarshal(trimmed, &batch) == nil {
		if len(batch) == 0 {
			return true, nil, "empty batch"
		}
		for _, m := range batch {
			if _, err := jsonrpc.DecodeMessage(m); err != nil {
				return true, nil, err.Error()
			}
		}
		return false, nil, ""
	}
	if _, err := jsonrpc.DecodeMessage(trimmed); err != nil {
		var probe struct {
			ID json.RawMessage `json:"id"`
		}
		json.Unmarshal(trimmed, &probe)
		if len(probe.ID) > 0 && (probe.ID[0] == '"' || (probe.ID[0] >= '0' && probe.ID[0] <= '9')) {
			id = probe.ID
		}
		return true, id, err.Error()
	}
	return false, nil, ""
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\n') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// idPattern finds a request id near the start of a message.
var idPattern = regexp.MustCompile(`"id"\s*:\s*(-?[0-9]+|"(?:[^"\\]|\\.){0,128}")`)

// leadingID looks for the id in the first bytes of an oversized request.
func leadingID(head, chunk []byte) (json.RawMessage, bool) {
	b := append(append([]byte{}, head...), chunk...)
	if len(b) > 4096 {
		b = b[:4096]
	}
	m := idPattern.FindSubmatch(b)
	if m == nil {
		return nil, false
	}
	return json.RawMessage(m[1]), true
}

func writeError(w io.Writer, id json.RawMessage, code int, msg string) {
	b, err := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}{JSONRPC: "2.0", ID: id, Error: struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, msg}})
	if err != nil {
		return
	}
	w.Write(append(b, '\n'))
}
