package netshape

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// echoServer echoes every connection on loopback until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// sinkServer reads every connection to the end and reports the byte
// counts on the returned channel.
func sinkServer(t *testing.T) (string, <-chan int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan int64, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { n, _ := io.Copy(io.Discard, c); c.Close(); got <- n }()
		}
	}()
	return ln.Addr().String(), got
}

func shaper(t *testing.T, target string, cfg Config) *Shaper {
	t.Helper()
	s, err := Listen(context.Background(), "127.0.0.1:0", target, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rtt(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	buf := []byte("ping")
	start := time.Now()
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// TestLatency: a round trip through the shaper costs at least 2×Latency
// (each direction is delayed); the measured figures are logged.
func TestLatency(t *testing.T) {
	echo := echoServer(t)
	for _, tc := range []struct {
		name            string
		latency, jitter time.Duration
	}{
		{"none", 0, 0},
		{"40ms", 40 * time.Millisecond, 0},
		{"40ms±10", 40 * time.Millisecond, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := shaper(t, echo, Config{Latency: tc.latency, Jitter: tc.jitter, Seed: 1})
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var lo, hi, sum time.Duration
			const n = 10
			for i := range n {
				d := rtt(t, c)
				if i == 0 || d < lo {
					lo = d
				}
				hi = max(hi, d)
				sum += d
			}
			t.Logf("latency %v jitter %v: rtt min %v mean %v max %v", tc.latency, tc.jitter, lo, sum/n, hi)
			if floor := 2 * (tc.latency - tc.jitter); lo < floor {
				t.Errorf("round trip %v is shorter than 2×(latency-jitter) = %v", lo, floor)
			}
		})
	}
}

// TestNoReordering: with jitter as large as the latency and many small
// writes, the bytes arrive exactly in the order sent.
func TestNoReordering(t *testing.T) {
	echo := echoServer(t)
	s := shaper(t, echo, Config{Latency: 5 * time.Millisecond, Jitter: 5 * time.Millisecond, Seed: 7})
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var sent bytes.Buffer
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range 2000 {
			b := []byte{byte(i), byte(i >> 8), byte(i * 7)}
			sent.Write(b)
			c.Write(b)
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // separate reads, separate delays
			}
		}
	}()
	got := make([]byte, 6000)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	<-wrote
	if !bytes.Equal(got, sent.Bytes()) {
		i := 0
		for i < len(got) && got[i] == sent.Bytes()[i] {
			i++
		}
		t.Fatalf("bytes reordered or changed from offset %d", i)
	}
}

// TestRateShared: two connections through one shaper share its Rate; the
// combined throughput stays under 2× the cap (it is logged).
func TestRateShared(t *testing.T) {
	sink, got := sinkServer(t)
	const rate, each = 200 << 10, 200 << 10
	s := shaper(t, sink, Config{Rate: rate})
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			c.Write(make([]byte, each))
			c.Close()
		})
	}
	wg.Wait()
	total := <-got + <-got
	el := time.Since(start)
	measured := float64(total) / el.Seconds()
	t.Logf("cap %d B/s: moved %d bytes over 2 connections in %v = %.0f B/s", rate, total, el, measured)
	if total != 2*each {
		t.Fatalf("moved %d bytes, want %d", total, 2*each)
	}
	if measured > 2*rate {
		t.Errorf("throughput %.0f B/s exceeds twice the cap %d", measured, rate)
	}
}

// TestResetFraction: with every connection chosen, the stream is reset
// before all of it arrives, and Stats count it.
func TestResetFraction(t *testing.T) {
	sink, got := sinkServer(t)
	s := shaper(t, sink, Config{ResetFraction: 1, ResetAfter: 64 << 10, Seed: 3})
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var werr error
	for range 100 {
		if _, werr = c.Write(make([]byte, 16<<10)); werr != nil {
			break
		}
	}
	if werr == nil {
		// The reset may land after the last write; a read sees it.
		_, werr = c.Read(make([]byte, 1))
	}
	if werr == nil || isTimeout(werr) {
		t.Fatalf("connection that should have been reset: %v", werr)
	}
	c.Close()
	n := <-got
	t.Logf("reset after %d bytes delivered (%v)", n, werr)
	if n > 64<<10+chunkSize {
		t.Errorf("%d bytes delivered, more than ResetAfter allows", n)
	}
	if st := s.Stats(); st.Reset != 1 {
		t.Errorf("stats %+v: want 1 reset", st)
	}
}

// TestSetDown: a down shaper resets open connections and new ones; back
// up, it forwards again on the same port.
func TestSetDown(t *testing.T) {
	echo := echoServer(t)
	s := shaper(t, echo, Config{})
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rtt(t, c)
	s.SetDown(true)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("open connection survived SetDown(true): %v", err)
	}
	c2, err := net.Dial("tcp", s.Addr())
	if err == nil {
		c2.SetDeadline(time.Now().Add(5 * time.Second))
		c2.Write([]byte("x"))
		if _, err := c2.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("new connection open while down: %v", err)
		}
		c2.Close()
	}
	s.SetDown(false)
	c3, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetDeadline(time.Now().Add(5 * time.Second))
	rtt(t, c3)
	if st := s.Stats(); st.Refused < 1 || st.Dropped != 1 {
		t.Errorf("stats %+v: want a refused connection and one dropped", st)
	}
}

// TestCloseEndsGoroutines: Close, or the end of the context given to
// Listen, with connections open ends every goroutine of the shaper (the
// clients keep their ends open meanwhile).
func TestCloseEndsGoroutines(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(s *Shaper, cancel context.CancelFunc)
	}{
		{"Close", func(s *Shaper, _ context.CancelFunc) { s.Close() }},
		{"context", func(_ *Shaper, cancel context.CancelFunc) { cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			echo := echoServer(t)
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s, err := Listen(ctx, "127.0.0.1:0", echo, Config{Latency: 10 * time.Millisecond}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				c, err := net.Dial("tcp", s.Addr())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				rtt(t, c)
			}
			tc.stop(s, cancel)
			// The echo server's own goroutines end when the shaper's side closes.
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines after stopping, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
			}
			s.Close()
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Latency: -1}, "latency"},
		{Config{Jitter: -1}, "jitter"},
		{Config{Rate: -1}, "rate"},
		{Config{ResetFraction: 1.5}, "reset_fraction"},
		{Config{ResetAfter: -1}, "reset_after"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{Latency: time.Millisecond, Rate: 1}).Validate(); err != nil {
		t.Error(err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
