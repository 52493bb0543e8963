package tor

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mmogit/mmogit/internal/onion"
	"github.com/mmogit/mmogit/internal/torctl"
)

// ErrServiceIDMismatch means tor published a different address than the
// one the key gives: the key was not passed to tor as we think.
var ErrServiceIDMismatch = errors.New("tor: tor's service id does not match the key")

// ServiceConfig describes an onion service to publish.
type ServiceConfig struct {
	// Key is the service's identity; its onion address is the address of
	// Key's public key. It is given to tor over the control port only and
	// never written to disk (ADD_ONION with DiscardPK).
	Key ed25519.PrivateKey
	// VirtualPort is the port on the onion address; Target the local
	// listener tor forwards to ("127.0.0.1:port" or "unix:/path").
	VirtualPort int
	Target      string
	// MaxStreams limits concurrent streams per rendezvous circuit (0 =
	// unlimited); excess streams close the circuit.
	MaxStreams int
	// PoW enables the proof-of-work DoS defence when tor supports it in
	// ADD_ONION (0.4.9+); Service.PoWEnabled reports whether it is on.
	PoW bool
	// ClientAuth restricts the service to clients holding the matching
	// x25519 private keys (client authorization v3).
	ClientAuth []*ecdh.PublicKey
}

// Service is a published onion service, alive as long as the daemon's
// control connection (or until Remove).
type Service struct {
	// ID is the 56-character address without ".onion".
	ID string
	// PoWEnabled reports whether the PoW defence was requested from tor.
	PoWEnabled bool

	d         *Daemon
	sub       *torctl.Subscription
	published chan struct{}
	once      sync.Once
}

// Publish creates the onion service (ADD_ONION Flags=DiscardPK) and checks
// that tor's ServiceID is the address computed from the key.
func (d *Daemon) Publish(ctx context.Context, cfg ServiceConfig) (*Service, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: service key is %d bytes, want %d", ErrBadConfig, len(cfg.Key), ed25519.PrivateKeySize)
	}
	pub := cfg.Key.Public().(ed25519.PublicKey)
	want := onion.Encode(pub)
	expanded := onion.ExpandKey(cfg.Key)
	req := torctl.AddOnionRequest{
		Key:        expanded[:],
		Ports:      []torctl.PortMapping{{Virtual: cfg.VirtualPort, Target: cfg.Target}},
		Flags:      []torctl.OnionFlag{torctl.FlagDiscardPK},
		MaxStreams: cfg.MaxStreams,
	}
	if cfg.MaxStreams > 0 {
		req.Flags = append(req.Flags, torctl.FlagMaxStreamsCloseCircuit)
	}
	for _, k := range cfg.ClientAuth {
		req.ClientAuthV3 = append(req.ClientAuthV3, onion.EncodeClientPublicKey(k))
	}
	powOn := cfg.PoW && d.SupportsPoW()
	if powOn {
		req.PoW = &torctl.PoWParams{}
	}
	// Subscribe before ADD_ONION so the first upload cannot be missed.
	sub, err := d.conn.Subscribe(ctx, "HS_DESC")
	if err != nil {
		return nil, fmt.Errorf("tor: publish: %w", err)
	}
	res, err := d.conn.AddOnion(ctx, req)
	if err != nil {
		sub.Cancel()
		return nil, fmt.Errorf("tor: publish: %w", err)
	}
	if res.ServiceID != want {
		d.conn.DelOnion(ctx, res.ServiceID)
		sub.Cancel()
		return nil, fmt.Errorf("%w: tor says %s, key gives %s", ErrServiceIDMismatch, res.ServiceID, want)
	}
	s := &Service{ID: res.ServiceID, PoWEnabled: powOn, d: d, sub: sub, published: make(chan struct{})}
	go s.watch()
	return s, nil
}

// SupportsPoW reports whether tor takes PoW parameters in ADD_ONION
// (0.4.9 and later; 0.4.8 only has the torrc option).
func (d *Daemon) SupportsPoW() bool { return d.version.AtLeast(0, 4, 9) }

// watch drains the HS_DESC subscription (so its buffer never fills) and
// marks the service published at the first UPLOADED for its ID.
func (s *Service) watch() {
	for ev := range s.sub.Events() {
		if d, err := torctl.ParseHSDesc(ev); err == nil && d.Action == "UPLOADED" && d.Address == s.ID {
			s.once.Do(func() { close(s.published) })
		}
	}
}

// Hostname is the service's address with ".onion".
func (s *Service) Hostname() string { return s.ID + onion.Suffix }

// Published is closed once the first descriptor upload succeeded.
func (s *Service) Published() <-chan struct{} { return s.published }

// WaitPublished waits for the first "HS_DESC UPLOADED" of the service: from
// then on clients can fetch its descriptor.
func (s *Service) WaitPublished(ctx context.Context) error {
	select {
	case <-s.published:
		return nil
	case <-s.d.conn.Done():
		return fmt.Errorf("tor: wait published: %w", s.d.conn.Err())
	case <-ctx.Done():
		return fmt.Errorf("tor: wait published %s: %w", s.ID, ctx.Err())
	}
}

// Remove takes the service down (DEL_ONION).
func (s *Service) Remove(ctx context.Context) error {
	s.sub.Cancel()
	if err := s.d.conn.DelOnion(ctx, s.ID); err != nil {
		return fmt.Errorf("tor: remove service: %w", err)
	}
	return nil
}

// newnymInterval is tor's rate limit for SIGNAL NEWNYM: a NEWNYM sooner
// than this after the previous one is delayed by tor anyway.
var newnymInterval = 10 * time.Second

// NewCircuits asks tor for fresh circuits (SIGNAL NEWNYM) so that new
// streams do not share circuits with earlier ones; NEWNYM also purges
// cached onion descriptors. Tor honours one NEWNYM per 10 s, so a call
// within 10 s of the previous one waits for the remainder first and reports
// how long it was deferred.
func (d *Daemon) NewCircuits(ctx context.Context) (deferred time.Duration, err error) {
	d.nymMu.Lock()
	defer d.nymMu.Unlock()
	if !d.lastNewnym.IsZero() {
		if wait := newnymInterval - time.Since(d.lastNewnym); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
				deferred = wait
			case <-ctx.Done():
				t.Stop()
				return 0, fmt.Errorf("tor: new circuits: %w", ctx.Err())
			}
		}
	}
	if err := d.conn.Signal(ctx, "NEWNYM"); err != nil {
		return deferred, fmt.Errorf("tor: new circuits: %w", err)
	}
	d.lastNewnym = time.Now()
	return deferred, nil
}
