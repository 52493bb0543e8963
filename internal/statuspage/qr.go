package statuspage

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mmogit/mmogit/internal/identity"
	"rsc.io/qr"
)

// qr serves the onion address as a QR code, drawn here as SVG (no
// script, no network).
func (s *Server) qr(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	addr := ""
	if st, err := s.agent.Status(ctx); err == nil {
		addr = st.OnionAddress
	} else if d, ok := s.local.(*Dir); ok {
		if id, err := identity.Load(d.Path); err == nil {
			addr = id.OnionAddress()
		}
	}
	if addr == "" {
		http.Error(w, "no onion address: no agent answers and no identity here", http.StatusNotFound)
		return
	}
	svg, err := qrSVG(addr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Write([]byte(svg))
}

// qrSVG draws text as a QR code (medium error correction), one path of
// unit squares with a 4-module quiet zone.
func qrSVG(text string) (string, error) {
	c, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", fmt.Errorf("statuspage: qr: %w", err)
	}
	n := c.Size + 8
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n, n, n)
	for y := range c.Size {
		for x := range c.Size {
			if c.Black(x, y) {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x+4, y+4)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
