package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/platform"
	"github.com/mmogit/mmogit/internal/statuspage"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newUICmd) }

// uiOut is what `mmogit --json ui` prints (one line) before serving.
type uiOut struct {
	URL    string `json:"url"`
	Listen string `json:"listen"`
	Opened bool   `json:"opened"`
	// LaunchFile is a private page (0600, in the config dir, removed
	// when the page stops) that sends a browser to URL: what gets opened,
	// so that the token is on no command line.
	LaunchFile string `json:"launch_file"`
}

func newUICmd() *cobra.Command {
	var listen, testnetDir string
	var noOpen, start bool
	cmd := &cobra.Command{
		Use:   "ui [--listen 127.0.0.1:0] [--no-open] [--start]",
		Short: "Serve a local status page of the running agent (loopback only) and open it in the browser",
		Long: `Serve a live status page: onion address and its QR code, tor bootstrap and
onion service publication, peers with their transport, last sync and trust
roles, discovered agents, and memories with their valid/INVALID and
encrypted/readable badges; with buttons to connect, sync, advertise, trust
and invite. The page talks to the agent through the same local API as the
CLI and serves nothing from the network.

It listens on loopback only and prints a URL with a one-time token; the
first load sets a session cookie, and every request needs it. The browser
is opened when there is a display (DISPLAY or WAYLAND_DISPLAY) unless
--no-open. With --start, an agent that is not running is started as by
` + "`mmogit tor start`" + `. The page runs until interrupted (Ctrl-C).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ln, err := statuspage.Listen(listen)
			if err != nil {
				if errors.Is(err, statuspage.ErrNotLoopback) {
					return &usageError{err}
				}
				return err
			}
			defer ln.Close()
			c := apiClient()
			if _, err := c.Status(ctx); localapi.IsNotRunning(err) {
				if !start {
					g.infof("no agent is running for %s: the page shows what is stored; start one with `mmogit tor start` (or `mmogit ui --start`)\n", g.configDir)
				} else {
					// In the background: the page shows the bootstrap.
					go func() {
						if _, err := startAgent(ctx, startArgs{testnet: testnetDir, timeout: 5 * time.Minute}); err != nil && ctx.Err() == nil {
							g.log.Error("start agent", "err", err)
						}
					}()
				}
			}
			srv, err := statuspage.New(ln, c, &statuspage.Dir{Path: g.configDir}, g.log)
			if err != nil {
				return err
			}
			out := uiOut{URL: srv.URL(), Listen: ln.Addr().String()}
			if out.LaunchFile, err = srv.WriteLaunchFile(g.configDir); err != nil {
				g.log.Warn("no launch file: the browser is not opened (the token stays off command lines)", "err", err)
			} else {
				defer os.Remove(out.LaunchFile)
			}
			if out.LaunchFile != "" && !noOpen && hasDisplay() {
				out.Opened = openBrowser((&url.URL{Scheme: "file", Path: out.LaunchFile}).String()) == nil
			}
			if err := g.emit(out, func(w io.Writer) {
				fmt.Fprintf(w, "status page: %s\n", out.URL)
				g.infof("the link works once (it sets a cookie in the browser that opens it); Ctrl-C stops the page\n")
			}); err != nil {
				return err
			}
			return srv.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:0", "loopback address to serve the page on (port 0: any free port)")
	f.BoolVar(&noOpen, "no-open", false, "do not open a browser")
	f.BoolVar(&start, "start", false, "start the agent if it is not running (as `mmogit tor start`)")
	f.StringVar(&testnetDir, "testnet", "", "with --start: join the private Tor network in this directory")
	return cmd
}

// hasDisplay reports whether a graphical session is there to open a
// browser in.
func hasDisplay() bool {
	return os.Getenv("DISPLAY") != "" || os.Getenv("WAYLAND_DISPLAY") != ""
}

// openBrowser opens url with xdg-open, detached, not waiting for it.
func openBrowser(url string) error {
	p, err := exec.LookPath("xdg-open")
	if err != nil {
		return err
	}
	cmd := exec.Command(p, url)
	platform.Detach(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
