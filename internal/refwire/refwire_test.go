package refwire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Bodies as the reference's serde_json::to_vec writes them.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{Type: Hello, Pubkey: "ab"}, `{"msg_type":{"Hello":{"pubkey":"ab"}},"payload":[],"signature":null}`},
		{Message{Type: Ping}, `{"msg_type":"Ping","payload":[],"signature":null}`},
		{Message{Type: Pong}, `{"msg_type":"Pong","payload":[],"signature":null}`},
		{Message{Type: Bye}, `{"msg_type":"Bye","payload":[],"signature":null}`},
		{Message{Type: MemoryRequest, Filter: "f"}, `{"msg_type":{"MemoryRequest":{"filter":"f"}},"payload":[],"signature":null}`},
		{Message{Type: MemoryResponse, Memories: []byte("[]")}, `{"msg_type":{"MemoryResponse":{"memories":[91,93]}},"payload":[],"signature":null}`},
		{Message{Type: GitBundle, BundleData: []byte{0, 255}}, `{"msg_type":{"GitBundle":{"bundle_data":[0,255]}},"payload":[],"signature":null}`},
	} {
		got, err := tc.m.Marshal()
		if err != nil || string(got) != tc.want {
			t.Fatalf("%s: %s, %v\nwant %s", tc.m.Type, got, err, tc.want)
		}
		back, err := Unmarshal(got)
		if err != nil || back.Type != tc.m.Type || back.Pubkey != tc.m.Pubkey || back.Filter != tc.m.Filter ||
			string(back.Memories) != string(tc.m.Memories) || string(back.BundleData) != string(tc.m.BundleData) {
			t.Fatalf("%s round trip: %+v, %v", tc.m.Type, back, err)
		}
	}
	if m, err := Unmarshal([]byte(`{"msg_type":{"Ping":null},"payload":[],"signature":null}`)); err != nil || m.Type != Ping {
		t.Fatalf("serde's other unit form: %+v, %v", m, err)
	}
}

func TestRefuses(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		// mmogit's own sync frames (package syncproto) are not reference frames
		{"mmogit Hello", `{"msg_type":"Hello","payload":{"pubkey":"","nonce":"00","version":1},"signature":null}`, "array of byte values"},
		{"mmogit Done", `{"msg_type":"Done","payload":{},"signature":null}`, "array of byte values"},
		{"unit variant Hello", `{"msg_type":"Hello","payload":[],"signature":null}`, "not a unit variant"},
		{"two variants", `{"msg_type":{"Ping":null,"Pong":null},"payload":[],"signature":null}`, "one-key"},
		{"unknown variant", `{"msg_type":{"Gossip":{}},"payload":[],"signature":null}`, "unknown variant"},
		{"Hello without pubkey", `{"msg_type":{"Hello":{}},"payload":[],"signature":null}`, "without pubkey"},
		{"no payload", `{"msg_type":"Ping","signature":null}`, "required"},
		{"byte 300", `{"msg_type":"Ping","payload":[300],"signature":null}`, "0..255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal([]byte(tc.body))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Unmarshal = %v, want ErrMalformed mentioning %q", err, tc.want)
			}
		})
	}
}

func TestServeConnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name    string
		request string
		first   bool // the listener read the connector's Hello before choosing refwire (--wire auto)
	}{
		{"handshake", "", false},
		{"auto-detected", "", true},
		{"memories", "all", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tcpPair(t)
			defer a.Close()
			defer b.Close()
			var got []byte
			type out struct {
				r   Result
				err error
			}
			done := make(chan out, 1)
			go func() {
				var first *Message
				if tc.first {
					body, err := ReadFrame(a)
					if err != nil {
						done <- out{err: err}
						return
					}
					m, err := Unmarshal(body)
					if err != nil {
						done <- out{err: err}
						return
					}
					first = &m
				}
				r, err := Serve(ctx, a, first, Options{Pubkey: "aa", Share: func(f string) ([]byte, error) { return []byte(`["` + f + `"]`), nil }})
				done <- out{r, err}
			}()
			rc, err := Connect(ctx, b, Options{Pubkey: "bb", Request: tc.request, Receive: func(m []byte) error { got = m; return nil }})
			if err != nil {
				t.Fatal(err)
			}
			rs := <-done
			if rs.err != nil {
				t.Fatal(rs.err)
			}
			if rc.PeerPubkey != "aa" || rs.r.PeerPubkey != "bb" {
				t.Fatalf("pubkeys: connector saw %q, listener %q", rc.PeerPubkey, rs.r.PeerPubkey)
			}
			wantSent := []string{Hello, Ping, Bye}
			if tc.request != "" {
				wantSent = []string{Hello, Ping, MemoryRequest, Bye}
				if string(got) != `["all"]` {
					t.Fatalf("memories received: %q", got)
				}
			}
			if !slices.Equal(rc.Sent, wantSent) || !slices.Equal(rs.r.Received, wantSent) {
				t.Fatalf("connector sent %v, listener received %v; want %v", rc.Sent, rs.r.Received, wantSent)
			}
		})
	}
}

// A peer that hangs up before Bye is an error, not a completed session.
func TestServeEOF(t *testing.T) {
	a, b := tcpPair(t)
	go func() {
		ReadFrame(b) // our Hello
		WriteMessage(b, Message{Type: Ping})
		ReadFrame(b) // Pong
		b.Close()
	}()
	r, err := Serve(context.Background(), a, nil, Options{Pubkey: "aa"})
	if err == nil || !slices.Equal(r.Sent, []string{Hello, Pong}) {
		t.Fatalf("Serve = %+v, %v", r, err)
	}
}

// tcpPair is a connected loopback TCP pair: like the reference, both sides
// write before reading, which needs the socket buffers net.Pipe lacks.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a == nil {
		t.Fatal("accept failed")
	}
	return a, b
}

// TestReadFrameClaimOnly: a header claiming the largest frame, then
// silence, costs what actually arrived, not the claimed size, and ends in
// an error that says the frame was cut short.
func TestReadFrameClaimOnly(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrame)
	in := io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader([]byte("{}")))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(in)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "ended after 2") {
		t.Fatalf("err = %v, want a cut-short frame", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("a %d-byte claim with 2 bytes sent allocated %d bytes", MaxFrame, got)
	}
}
