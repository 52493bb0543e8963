package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"
)

func TestFrameVectors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want string // msg_type, or "" for an error
		err  error
	}{
		{"ping", []byte("\x00\x00\x00\x3a" + `{"msg_type":"Ping","payload":{"nonce":7},"signature":null}`), "Ping", nil},
		{"reference shape without payload", []byte("\x00\x00\x00\x13" + `{"msg_type":"Bye"}` + " "), "Bye", nil},
		{"short header", []byte{0, 0}, "", io.ErrUnexpectedEOF},
		{"short body", []byte("\x00\x00\x00\x10{}"), "", io.ErrUnexpectedEOF},
		{"too large", []byte{0x00, 0xa0, 0x00, 0x01}, "", ErrFrameTooLarge},
		{"not json", []byte("\x00\x00\x00\x03abc"), "", ErrProtocol},
		{"no type", []byte("\x00\x00\x00\x02{}"), "", ErrProtocol},
		{"trailing", []byte("\x00\x00\x00\x17" + `{"msg_type":"Bye"} {}  `), "", ErrProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, n, err := DecodeFrame(tc.in, MaxFrame)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("DecodeFrame = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil || m.Type != tc.want || n != len(tc.in) {
				t.Fatalf("DecodeFrame = %+v, %d, %v", m, n, err)
			}
			// ReadFrame agrees with DecodeFrame.
			m2, n2, err := ReadFrame(bytes.NewReader(tc.in), MaxFrame)
			if err != nil || m2.Type != m.Type || n2 != n {
				t.Fatalf("ReadFrame = %+v, %d, %v", m2, n2, err)
			}
		})
	}
	// The encoder writes exactly the first vector.
	m, _ := NewMessage(TypePing, pingMsg{Nonce: 7})
	b, err := AppendFrame(nil, m, MaxFrame)
	if err != nil || string(b) != string(tests[0].in) {
		t.Fatalf("AppendFrame = %q, %v", b, err)
	}
	if _, err := AppendFrame(nil, m, 10); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("AppendFrame over max = %v", err)
	}
}

// FuzzReadFrame drives the streaming reader the agent uses (ReadFrame over
// an io.Reader, body buffers grown as bytes arrive) with input delivered in
// small reads: it never panics and agrees with DecodeFrame on every input.
// (That a big header alone allocates at most firstChunk is checked by
// TestReadFrameAllocatesAsBytesArrive.)
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x3a"+`{"msg_type":"Ping","payload":{"nonce":7},"signature":null}`), uint8(3))
	f.Add([]byte{0x00, 0x9f, 0xff, 0xff, '{'}, uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint8) {
		r := iotest.OneByteReader(bytes.NewReader(b))
		if chunk > 1 {
			r = &chunkReader{r: bytes.NewReader(b), n: int(chunk)}
		}
		m, n, err := ReadFrame(r, MaxFrame)
		dm, dn, derr := DecodeFrame(b, MaxFrame)
		if (err == nil) != (derr == nil) {
			t.Fatalf("ReadFrame err %v, DecodeFrame err %v", err, derr)
		}
		if err == nil && (n != dn || m.Type != dm.Type || !bytes.Equal(m.Payload, dm.Payload)) {
			t.Fatalf("ReadFrame %+v/%d, DecodeFrame %+v/%d", m, n, dm, dn)
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzDecodeFrame: decoding never panics, never accepts more than the cap,
// and whatever decodes re-encodes to a frame that decodes the same.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x3a" + `{"msg_type":"Ping","payload":{"nonce":7},"signature":null}`))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1 << 16
		m, n, err := DecodeFrame(b, max)
		if err != nil {
			return
		}
		if n > len(b) || n-4 > max {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		enc, err := AppendFrame(nil, m, max*2)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		m2, _, err := DecodeFrame(enc, max*2)
		if err != nil || m2.Type != m.Type {
			t.Fatalf("round trip: %+v vs %+v: %v", m2, m, err)
		}
		var a, c any
		if json.Unmarshal(m.Payload, &a) != nil || json.Unmarshal(m2.Payload, &c) != nil {
			t.Fatalf("payload not json after round trip")
		}
	})
}

// TestReadFrameAllocatesAsBytesArrive: a header claiming the maximum size
// followed by a stall must not allocate the claimed size up front.
func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	hdr := []byte{0, 0x9f, 0xff, 0xff} // ~10 MB, under the cap
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	for range 20 {
		_, _, err := ReadFrame(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader([]byte("{"))), MaxFrame)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v", err)
		}
	}
	runtime.ReadMemStats(&ms1)
	if got := ms1.TotalAlloc - ms0.TotalAlloc; got > 20*2*firstChunk {
		t.Fatalf("20 stalled 10 MB headers allocated %d bytes", got)
	}
	// A real large frame still reads whole.
	big := bytes.Repeat([]byte("a"), 3*firstChunk+17)
	m, err := NewMessage(TypePing, map[string]string{"pad": string(big)})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := AppendFrame(nil, m, MaxFrame)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err := ReadFrame(iotest.OneByteReader(bytes.NewReader(frame)), MaxFrame)
	if err != nil || n != len(frame) || got.Type != TypePing {
		t.Fatalf("large frame: %v n=%d", err, n)
	}
}
