package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mmogit/mmogit/internal/cluster"
)

// chromiumPath finds Debian's chromium (scripts/deps.sh installs it). A
// missing browser skips the page tests on a developer machine and fails
// them under CI=true, where it means a broken image.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := findChromium()
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v; under CI=true the status page tests must run, not skip", err)
	}
	t.Skip(err)
	return ""
}

func findChromium() (string, error) {
	if p := os.Getenv("MMOGIT_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not installed (scripts/deps.sh installs it; apt-get install -y chromium)")
}

// page is `mmogit ui` for one agent, open in a headless chromium.
type page struct {
	t     *testing.T
	ctx   context.Context // the browser tab
	url   string          // the printed URL (token spent by the first load)
	shots string          // where screenshots go
}

// openPage starts `mmogit ui` for a (its own process, talking to the
// agent over the local API; uiArgs are more flags) and loads the printed
// URL in a headless chromium. Both stop when the test ends.
func openPage(t *testing.T, a *cluster.Agent, uiArgs ...string) *page {
	t.Helper()
	chromium := chromiumPath(t)
	uctx, ucancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(uctx, bin, append([]string{"--config-dir", a.Dir, "--json", "ui", "--no-open"}, uiArgs...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var errb strings.Builder
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ucancel()
		// Stopped by SIGTERM: a clean exit is reported as the context's error.
		if err := cmd.Wait(); err != nil && !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "signal: terminated") {
			t.Errorf("mmogit ui: %v\n%s", err, errb.String())
		}
		if s := errb.String(); strings.Contains(s, "panic:") || strings.Contains(s, "DATA RACE") {
			t.Errorf("mmogit ui stderr:\n%s", s)
		}
	})
	var out struct {
		URL, Listen string
		LaunchFile  string `json:"launch_file"`
	}
	if err := json.NewDecoder(stdout).Decode(&out); err != nil || !strings.HasPrefix(out.URL, "http://127.0.0.1:") || !strings.Contains(out.URL, "token=") {
		t.Fatalf("mmogit --json ui printed %+v (%v): want a loopback URL with a token\n%s", out, err, errb.String())
	}
	// What `mmogit ui` hands to a browser: a private file, not the URL.
	if fi, err := os.Stat(out.LaunchFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("launch file %q: %v, %v: want a 0600 file", out.LaunchFile, fi, err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.DisableGPU, chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(func() { bcancel(); acancel() })
	shots := os.Getenv("MMOGIT_UI_SHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o700); err != nil {
		t.Fatal(err)
	}
	// The first run starts the browser, which lives as long as that
	// run's context: bctx, not a timeout derived from it.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	p := &page{t: t, ctx: bctx, url: out.URL, shots: shots}
	// Open the page as a user's browser does, through the launch file
	// (file:// → the token URL → the page, with the session cookie).
	p.do(chromedp.Navigate((&url.URL{Scheme: "file", Path: out.LaunchFile}).String()))
	p.waitJS("the page, reached from the launch file", `document.location.protocol === "http:" && document.location.search === "" && document.getElementById("identity") !== null`, 30*time.Second)
	loc := evalJS[string](p, `document.location.toString()`)
	if strings.Contains(loc, "token=") {
		t.Errorf("after the first load the address bar still holds the token: %s", loc)
	}
	return p
}

// do runs browser actions, failing the test on an error.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("chromium: %v", err)
	}
}

// evalJS evaluates a JavaScript expression in the page.
func evalJS[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("chromium: evaluate %s: %v", expr, err)
	}
	return v
}

// text is the page's visible text.
func (p *page) text() string {
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	return s
}

// waitJS waits until the JavaScript expression is true, failing the
// test (with a screenshot and the page's text) after timeout.
func (p *page) waitJS(what, expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			p.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
			p.t.Fatalf("page never showed %s within %s (%s; last error %v); page text:\n%s", what, timeout, expr, err, p.text())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// shot writes a full-page PNG screenshot named for the state shown.
func (p *page) shot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	f := filepath.Join(p.shots, p.t.Name()+"-"+name+".png")
	f = strings.ReplaceAll(f, string(filepath.Separator)+"TestStatusPage/", string(filepath.Separator))
	if err := os.WriteFile(f, buf, 0o600); err != nil {
		p.t.Errorf("screenshot: %v", err)
		return
	}
	p.t.Logf("screenshot: %s", f)
}

// js quotes s as a JavaScript string.
func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestStatusPage drives `mmogit ui` in a real headless chromium against a
// real agent on the private Tor network: the bootstrap bar and the onion
// service's publication, a peer appearing after `tor connect` with its
// transport, an agent found by discovery, a synced memory with its valid
// badge, and "sync now" bringing a new memory without a page reload.
func TestStatusPage(t *testing.T) {
	if testing.Short() {
		t.Skip("two agents on the private Tor network and a browser: slow")
	}
	chromiumPath(t)
	b := startAgents(t, agentSpec{name: "other", services: []string{"memory_sync"}})[0]
	post(t, b, "first memory from other")
	// The viewed agent is started by `mmogit ui --start`, so the page
	// shows its bootstrap from the beginning.
	tn := testnetDir(t)
	a, err := cluster.Prepare(cluster.AgentOptions{Bin: bin, Dir: filepath.Join(t.TempDir(), "viewed"), Name: "viewed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.TrustEachOther(a, b); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := run(t, a, "tor", "stop"); err != nil {
			t.Errorf("stop the agent ui --start started: %v", err)
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", a.Name, a.Tail(60))
		}
		checkLogClean(t, a)
	})
	p := openPage(t, a, "--start", "--testnet", tn)

	// The bar's values as the page showed them, for the log.
	var seen []int
	done := `document.getElementById("bootstrap").value === 100 && document.getElementById("published").textContent === "published" && document.getElementById("onion").textContent === ` + js(a.ID.OnionAddress())
	for deadline := time.Now().Add(2 * time.Minute); !evalJS[bool](p, done); time.Sleep(200 * time.Millisecond) {
		if v := evalJS[int](p, `document.getElementById("bootstrap").value`); len(seen) == 0 || seen[len(seen)-1] != v {
			seen = append(seen, v)
			if v < 100 && len(seen) <= 2 {
				p.shot("0-bootstrapping")
			}
		}
		if time.Now().After(deadline) {
			p.waitJS("the bootstrap bar at 100% and the onion service published", done, time.Second)
		}
	}
	t.Logf("bootstrap values the page showed: %v", seen)
	p.waitJS("the QR code", `document.getElementById("qr").complete && document.getElementById("qr").naturalWidth > 0`, 30*time.Second)
	p.shot("1-bootstrapped")

	row := `document.querySelector('#peers tr[data-peer-id="` + b.ID.PeerID().String() + `"]')`
	if evalJS[bool](p, row+` !== null`) {
		t.Errorf("the other agent is listed as a peer before any connection")
	}
	if _, err := run(t, a, "tor", "connect", b.ID.OnionAddress()); err != nil {
		t.Fatal(err)
	}
	p.waitJS("the peer connected over tor", row+` !== null && `+row+`.querySelector(".transport").textContent === "tor · connected"`, time.Minute)
	p.shot("2-peer-connected")

	// The other agent publishes its ad now that it has a DHT peer; the
	// page then looks it up (re-asking while it is not found: the DHT
	// through tor can take a moment).
	if _, err := run(t, b, "tor", "advertise", "--services", "memory_sync"); err != nil {
		t.Fatal(err)
	}
	found := `document.querySelector('#found ul[data-service="memory_sync"] li.ad[data-onion="` + b.ID.OnionAddress() + `"]') !== null`
	deadline := time.Now().Add(2 * time.Minute)
	for {
		p.do(chromedp.SetValue(chromedp.CSS("#discover-service"), "memory_sync"), chromedp.Click(chromedp.CSS("#discover-form button")))
		ok := false
		for range 40 {
			time.Sleep(500 * time.Millisecond)
			if ok = evalJS[bool](p, found); ok {
				break
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			p.waitJS("the discovered agent", found, time.Second)
		}
	}
	p.shot("3-discovered")

	memory := func(text string) string {
		return `[...document.querySelectorAll("#memories li")].some(li => li.querySelector(".text") && li.querySelector(".text").textContent === ` + js(text) + ` && li.querySelector(".badge.valid") !== null && li.querySelector(".badge.valid").textContent === "valid")`
	}
	if _, err := run(t, a, "sync"); err != nil {
		t.Fatal(err)
	}
	p.waitJS("the synced memory with its valid badge", memory("first memory from other"), 30*time.Second)
	p.waitJS("the peer's last sync counts", row+`.querySelector(".counts").textContent.startsWith("1 received")`, 30*time.Second)
	p.shot("4-synced")

	// Trust actions: the row's button takes the roles away and gives
	// them back (the trust list the next sync applies).
	roles := row + `.querySelector(".roles").textContent`
	p.waitJS("the peer's trust roles", roles+` === "read, write"`, 10*time.Second)
	trustButton := chromedp.CSS(`#peers tr[data-peer-id="` + b.ID.PeerID().String() + `"] button[data-peer]`)
	p.do(chromedp.Click(trustButton))
	p.waitJS("the peer untrusted", roles+` === "stranger"`, 30*time.Second)
	p.do(chromedp.Click(trustButton))
	p.waitJS("the peer trusted again", roles+` === "read, write"`, 30*time.Second)
	p.do(chromedp.Click(chromedp.CSS("#invite-form button")))
	p.waitJS("an invite line", `document.getElementById("invite-out").textContent.startsWith("mmogit-invite1:")`, 30*time.Second)
	p.do(chromedp.SetValue(chromedp.CSS("#advertise-services"), "memory_sync,chat"), chromedp.Click(chromedp.CSS("#advertise-form button")))
	p.waitJS("the advertised services", `document.getElementById("advertising").textContent === "chat, memory_sync"`, time.Minute)
	p.shot("5-actions")

	post(t, b, "second memory from other")
	p.do(chromedp.Click(chromedp.CSS("#sync-now")))
	p.waitJS("the memory brought by sync now", memory("second memory from other"), 2*time.Minute)
	p.shot("6-sync-now")
	if n := evalJS[string](p, `document.body.dataset.loads`); n != "1" {
		t.Errorf("the page was loaded %s times: live updates must not reload it", n)
	}
	t.Logf("page polls: %s; screenshots in %s", evalJS[string](p, `document.body.dataset.polls`), p.shots)
}

// pageActions drives the page of a tor-only agent that is connected to
// other: a connect to other's IP address (which the agent's policy must
// refuse), sync now and a discovery, so the anonymity trace covers what
// the page makes the agent do.
func pageActions(t *testing.T, p *page, other *cluster.Agent) {
	t.Helper()
	p.waitJS("the onion service published", `document.getElementById("published").textContent === "published"`, time.Minute)
	log := `document.getElementById("messages").textContent`
	direct := "/ip4/127.0.0.1/tcp/7420/p2p/" + other.ID.PeerID().String()
	p.do(chromedp.SetValue(chromedp.CSS("#connect-target"), direct), chromedp.Click(chromedp.CSS("#connect-form button")))
	p.waitJS("the policy refusal of an IP address", log+`.includes("tor mode")`, time.Minute)
	p.do(chromedp.Click(chromedp.CSS("#sync-now")))
	p.waitJS("the result of sync now", log+`.includes("sync `+other.ID.PeerID().String()+`: received")`, 2*time.Minute)
	p.do(chromedp.SetValue(chromedp.CSS("#discover-service"), "memory_sync"), chromedp.Click(chromedp.CSS("#discover-form button")))
	p.waitJS("a discovery answer", `[...document.querySelectorAll("#found h3")].some(h => h.textContent.includes("found, looked"))`, 2*time.Minute)
	p.shot("traced-agent")
}
