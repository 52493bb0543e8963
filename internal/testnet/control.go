package testnet

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This is the smallest control-port client the network needs: cookie
// authentication, TAKEOWNERSHIP and GETINFO. It sends no SETEVENTS, so
// every line it reads belongs to the reply of the command it just sent.
// The project's full client lives in internal/torctl.

// ControlError is a non-2xx control-port reply.
type ControlError struct {
	Code int
	Msg  string
}

func (e *ControlError) Error() string {
	return fmt.Sprintf("testnet: control reply %d %s", e.Code, e.Msg)
}

// ctlConn is one authenticated control connection.
type ctlConn struct {
	mu sync.Mutex // mu serialises commands on the fields below
	c  net.Conn
	r  *bufio.Reader
}

// readControlPortFile parses what ControlPortWriteToFile writes:
// "PORT=127.0.0.1:12345".
func readControlPortFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if addr, ok := strings.CutPrefix(strings.TrimSpace(l), "PORT="); ok {
			return addr, nil
		}
	}
	return "", fmt.Errorf("testnet: no PORT= line in %s", path)
}

// dialControl connects to addr and authenticates with the cookie file.
// COOKIE authentication is enough here: the cookie file is in a directory
// only we can read, and the port is on loopback.
func dialControl(ctx context.Context, addr, cookiePath string) (*ctlConn, error) {
	cookie, err := os.ReadFile(cookiePath)
	if err != nil {
		return nil, fmt.Errorf("testnet: control cookie: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("testnet: control dial: %w", err)
	}
	cc := &ctlConn{c: c, r: bufio.NewReader(c)}
	if _, err := cc.do(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie)); err != nil {
		c.Close()
		return nil, fmt.Errorf("testnet: control authenticate: %w", err)
	}
	return cc, nil
}

// do sends one command and returns the reply lines without their status
// prefix; data blocks ("250+key=" … ".") are joined with newlines.
func (cc *ctlConn) do(ctx context.Context, cmd string) ([]string, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cc.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := cc.c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, ctxErr(ctx, err)
	}
	lines, err := readReply(cc.r)
	return lines, ctxErr(ctx, err)
}

func ctxErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readReply reads one reply (control-spec §2.3):
//
//	Reply = SyncReply / AsyncReply
//	SyncReply = *(MidReplyLine / DataReplyLine) EndReplyLine
//	MidReplyLine = StatusCode "-" ReplyLine
//	DataReplyLine = StatusCode "+" ReplyLine CmdData
//	EndReplyLine = StatusCode SP ReplyLine
func readReply(r *bufio.Reader) ([]string, error) {
	var lines []string
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 {
			return nil, fmt.Errorf("testnet: short control line %q", l)
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil {
			return nil, fmt.Errorf("testnet: bad control line %q", l)
		}
		text := l[4:]
		if l[3] == '+' {
			var data []string
			for {
				d, err := r.ReadString('\n')
				if err != nil {
					return nil, err
				}
				d = strings.TrimRight(d, "\r\n")
				if d == "." {
					break
				}
				data = append(data, strings.TrimPrefix(d, "."))
			}
			text += "\n" + strings.Join(data, "\n")
		}
		if code/100 != 2 {
			return nil, &ControlError{Code: code, Msg: text}
		}
		lines = append(lines, text)
		if l[3] == ' ' {
			return lines, nil
		}
	}
}

// getInfo returns the value of one GETINFO key.
func (cc *ctlConn) getInfo(ctx context.Context, key string) (string, error) {
	lines, err := cc.do(ctx, "GETINFO "+key)
	if err != nil {
		return "", fmt.Errorf("testnet: getinfo %s: %w", key, err)
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return strings.TrimPrefix(v, "\n"), nil
		}
	}
	return "", fmt.Errorf("testnet: getinfo %s: no value in %q", key, lines)
}

func (cc *ctlConn) Close() error { return cc.c.Close() }

// bootstrapProgress extracts PROGRESS and SUMMARY from a
// status/bootstrap-phase value such as
// `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`.
func bootstrapProgress(v string) (progress int, summary string) {
	progress = -1
	for _, f := range strings.Fields(v) {
		if p, ok := strings.CutPrefix(f, "PROGRESS="); ok {
			if n, err := strconv.Atoi(p); err == nil {
				progress = n
			}
		}
	}
	if _, s, ok := strings.Cut(v, `SUMMARY="`); ok {
		summary, _, _ = strings.Cut(s, `"`)
	}
	return progress, summary
}
