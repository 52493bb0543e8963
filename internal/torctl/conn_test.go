package torctl_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mmogit/mmogit/internal/torctl"
	"github.com/mmogit/mmogit/internal/torctl/torctltest"
)

func dialFake(t *testing.T) (*torctltest.Server, *torctl.Conn) {
	t.Helper()
	srv := torctltest.NewServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := torctl.Dial(ctx, "tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(ctx, torctl.AuthOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFakeSafeCookie(t *testing.T) {
	srv, c := dialFake(t)
	cmds := srv.Commands()
	if len(cmds) != 3 || !strings.HasPrefix(cmds[1], "AUTHCHALLENGE SAFECOOKIE ") {
		t.Fatalf("handshake commands = %q", cmds)
	}
	v, err := c.GetInfo(testCtx(t), "version")
	if err != nil || v["version"] != "0.4.9.11" {
		t.Fatalf("GetInfo = %v, %v", v, err)
	}
}

func TestFakeBadServerHashRefused(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SendBadServerHash()
	ctx := testCtx(t)
	c, err := torctl.Dial(ctx, "tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Authenticate(ctx, torctl.AuthOptions{})
	if !errors.Is(err, torctl.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	for _, cmd := range srv.Commands() {
		if strings.HasPrefix(cmd, "AUTHENTICATE") {
			t.Fatalf("client answered a server that could not prove cookie knowledge: %q", cmd)
		}
	}
}

func TestFakeReplyError(t *testing.T) {
	_, c := dialFake(t)
	_, err := c.GetInfo(testCtx(t), "no/such/key")
	var re *torctl.ReplyError
	if !errors.As(err, &re) || re.Code != 552 {
		t.Fatalf("err = %v, want ReplyError 552", err)
	}
}

// A subscriber that never reads must not stall replies: the reader
// goroutine drops its events instead.
func TestFakeSlowSubscriberDoesNotStallReplies(t *testing.T) {
	srv, c := dialFake(t)
	ctx := testCtx(t)
	sub, err := c.Subscribe(ctx, "HS_DESC")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	const n = 3 * torctl.DefaultEventBuffer
	for i := 0; i < n; i++ {
		srv.Emit(fmt.Sprintf("650 HS_DESC UPLOAD x%d UNKNOWN $A", i))
	}
	for i := 0; i < 20; i++ {
		if _, err := c.GetInfo(ctx, "version"); err != nil {
			t.Fatal(err)
		}
	}
	// The events were written before the GETINFO replies, so they have
	// all been read by now.
	if got := sub.Dropped(); got != n-torctl.DefaultEventBuffer {
		t.Fatalf("dropped %d events, want %d", got, n-torctl.DefaultEventBuffer)
	}
	if len(sub.Events()) != torctl.DefaultEventBuffer {
		t.Fatalf("buffered %d events", len(sub.Events()))
	}
}

func TestFakeEventsInterleavedWithReplies(t *testing.T) {
	srv, c := dialFake(t)
	ctx := testCtx(t)
	srv.Handle("SIGNAL", func(args string) []string {
		// An event arriving between a command and its reply.
		return []string{"650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=x SUMMARY=\"half\"", "250 OK"}
	})
	sub, err := c.Subscribe(ctx, "STATUS_CLIENT")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx, "NEWNYM"); err != nil {
		t.Fatal(err)
	}
	ev := <-sub.Events()
	st, ok, err := torctl.BootstrapFromEvent(ev)
	if !ok || err != nil || st.Progress != 50 || st.Summary != "half" {
		t.Fatalf("got %+v %v %v", st, ok, err)
	}
	if got := srv.Commands(); !contains(got, "SETEVENTS STATUS_CLIENT") {
		t.Fatalf("commands %q lack SETEVENTS", got)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestFakeWaitHSDescUploaded(t *testing.T) {
	srv, c := dialFake(t)
	ctx := testCtx(t)
	id := "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
	sub, err := c.Subscribe(ctx, "HS_DESC")
	if err != nil {
		t.Fatal(err)
	}
	srv.Emit("650 HS_DESC UPLOAD "+id+" UNKNOWN $A", "650 HS_DESC UPLOADED other UNKNOWN $A")
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := torctl.WaitHSDescUploaded(short, sub, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v before upload", err)
	}
	srv.Emit("650 HS_DESC UPLOADED " + id + " UNKNOWN $A")
	if err := torctl.WaitHSDescUploaded(ctx, sub, id); err != nil {
		t.Fatal(err)
	}
}

func TestFakeClosedConnection(t *testing.T) {
	srv, c := dialFake(t)
	ctx := testCtx(t)
	block := make(chan struct{})
	srv.Handle("SIGNAL", func(string) []string { <-block; return nil })
	defer close(block)
	errc := make(chan error, 1)
	go func() { errc <- c.Signal(ctx, "NEWNYM") }()
	time.Sleep(50 * time.Millisecond) // let the command reach the server
	srv.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, torctl.ErrClosed) {
			t.Fatalf("pending call err = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending call did not return after the server closed")
	}
	<-c.Done()
	if _, err := c.GetInfo(ctx, "version"); !errors.Is(err, torctl.ErrClosed) {
		t.Fatalf("later call err = %v, want ErrClosed", err)
	}
}

func TestContextCancelKeepsConnUsable(t *testing.T) {
	srv, c := dialFake(t)
	release := make(chan struct{})
	srv.Handle("SIGNAL", func(string) []string { <-release; return []string{"250 OK"} })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Signal(ctx, "NEWNYM"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	close(release)
	// The late SIGNAL reply must be consumed by the abandoned call, not
	// handed to the next one.
	v, err := c.GetInfo(testCtx(t), "version")
	if err != nil || v["version"] != "0.4.9.11" {
		t.Fatalf("GetInfo after cancel = %v, %v", v, err)
	}
}

func TestInjectionRefused(t *testing.T) {
	srv, c := dialFake(t)
	ctx := testCtx(t)
	before := len(srv.Commands())
	if _, err := c.GetInfo(ctx, "version\r\nSIGNAL HALT"); !errors.Is(err, torctl.ErrBadArgument) {
		t.Fatalf("err = %v", err)
	}
	if err := c.Signal(ctx, "NEWNYM HALT"); !errors.Is(err, torctl.ErrBadArgument) {
		t.Fatalf("err = %v", err)
	}
	if err := c.SetConf(ctx, torctl.KeyValue{Key: "ContactInfo", Value: "x\nSIGNAL HALT"}); !errors.Is(err, torctl.ErrBadArgument) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Do(ctx, "GETINFO version\nSIGNAL HALT"); !errors.Is(err, torctl.ErrBadArgument) {
		t.Fatalf("err = %v", err)
	}
	if n := len(srv.Commands()); n != before {
		t.Fatalf("%d commands reached the server", n-before)
	}
}

func TestNewOverPipe(t *testing.T) {
	a, b := net.Pipe()
	c := torctl.New(a)
	defer c.Close()
	go func() {
		buf := make([]byte, 512)
		n, _ := b.Read(buf)
		if string(buf[:n]) == "GETINFO version\r\n" {
			b.Write([]byte("250-version=0.4.9.11\r\n250 OK\r\n"))
		}
		b.Close()
	}()
	v, err := c.GetInfo(testCtx(t), "version")
	if err != nil || v["version"] != "0.4.9.11" {
		t.Fatalf("got %v %v", v, err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after peer closed")
	}
	if !errors.Is(c.Err(), torctl.ErrClosed) {
		t.Fatalf("Err = %v", c.Err())
	}
}

// TestAuthMethodSelection checks which method Authenticate picks for what
// the control port offers, what it sends, and that with RequireSafeCookie
// nothing secret reaches a port that offers less than SAFECOOKIE.
func TestAuthMethodSelection(t *testing.T) {
	const pw = `pass "word"`
	tests := []struct {
		name    string
		offered []string
		opts    torctl.AuthOptions
		want    string // "safecookie", "cookie", "password", "null"
		err     error  // instead of want
	}{
		{"safecookie first", []string{"COOKIE", "SAFECOOKIE", "HASHEDPASSWORD"}, torctl.AuthOptions{Password: pw}, "safecookie", nil},
		{"safecookie only, required", []string{"SAFECOOKIE"}, torctl.AuthOptions{RequireSafeCookie: true}, "safecookie", nil},
		{"cookie only", []string{"COOKIE"}, torctl.AuthOptions{}, "cookie", nil},
		{"cookie only, safecookie required", []string{"COOKIE"}, torctl.AuthOptions{RequireSafeCookie: true}, "", torctl.ErrSafeCookieRequired},
		{"cookie before password", []string{"HASHEDPASSWORD", "COOKIE"}, torctl.AuthOptions{Password: pw}, "cookie", nil},
		{"password", []string{"HASHEDPASSWORD"}, torctl.AuthOptions{Password: pw}, "password", nil},
		{"no raw cookie: password instead", []string{"HASHEDPASSWORD", "COOKIE"}, torctl.AuthOptions{Password: pw, NoRawCookie: true}, "password", nil},
		{"no raw cookie: safecookie still used", []string{"COOKIE", "SAFECOOKIE"}, torctl.AuthOptions{NoRawCookie: true}, "safecookie", nil},
		{"no raw cookie: cookie only", []string{"COOKIE"}, torctl.AuthOptions{NoRawCookie: true}, "", torctl.ErrAuth},
		{"password, safecookie required", []string{"HASHEDPASSWORD"}, torctl.AuthOptions{Password: pw, RequireSafeCookie: true}, "", torctl.ErrSafeCookieRequired},
		{"password not configured", []string{"HASHEDPASSWORD"}, torctl.AuthOptions{}, "", torctl.ErrAuth},
		{"password before null", []string{"NULL", "HASHEDPASSWORD"}, torctl.AuthOptions{Password: pw, AllowNull: true}, "password", nil},
		{"null not allowed", []string{"NULL"}, torctl.AuthOptions{}, "", torctl.ErrAuth},
		{"null allowed", []string{"NULL"}, torctl.AuthOptions{AllowNull: true}, "null", nil},
		{"null, safecookie required", []string{"NULL"}, torctl.AuthOptions{AllowNull: true, RequireSafeCookie: true}, "", torctl.ErrSafeCookieRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := torctltest.NewServer(t)
			srv.SetAuthMethods(tt.offered...)
			srv.SetPassword(pw)
			cookie, err := os.ReadFile(srv.CookiePath)
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			c, err := torctl.Dial(ctx, "tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.Authenticate(ctx, tt.opts)
			var sent []string
			for _, cmd := range srv.Commands() {
				if strings.HasPrefix(cmd, "AUTH") {
					sent = append(sent, cmd)
				}
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) || !errors.Is(err, torctl.ErrAuth) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if len(sent) != 0 {
					t.Fatalf("sent %q to a port that was refused", sent)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v (sent %q)", err, sent)
			}
			quoted, _ := torctl.Quote(pw)
			var want []string
			switch tt.want {
			case "safecookie":
				if len(sent) != 2 || !strings.HasPrefix(sent[0], "AUTHCHALLENGE SAFECOOKIE ") ||
					!strings.HasPrefix(sent[1], "AUTHENTICATE ") || strings.Contains(sent[1], hex.EncodeToString(cookie)) {
					t.Fatalf("sent %q, want AUTHCHALLENGE then AUTHENTICATE <hmac>", sent)
				}
				want = sent
			case "cookie":
				want = []string{"AUTHENTICATE " + hex.EncodeToString(cookie)}
			case "password":
				want = []string{"AUTHENTICATE " + quoted}
			case "null":
				want = []string{"AUTHENTICATE"}
			}
			if !slices.Equal(sent, want) {
				t.Fatalf("sent %q, want %q", sent, want)
			}
			if _, err := c.GetInfo(ctx, "version"); err != nil {
				t.Fatalf("not authenticated after %s: %v", tt.want, err)
			}
		})
	}
}

func TestAuthWrongPassword(t *testing.T) {
	srv := torctltest.NewServer(t)
	srv.SetAuthMethods("HASHEDPASSWORD")
	srv.SetPassword("right")
	ctx := testCtx(t)
	c, err := torctl.Dial(ctx, "tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Authenticate(ctx, torctl.AuthOptions{Password: "wrong"})
	var re *torctl.ReplyError
	if !errors.As(err, &re) || re.Code != 515 {
		t.Fatalf("err = %v, want tor's 515", err)
	}
}
