package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/mmogit/mmogit/internal/identity"
	"github.com/mmogit/mmogit/internal/invite"
	"github.com/mmogit/mmogit/internal/localapi"
	"github.com/mmogit/mmogit/internal/trust"
)

// inviteTimeout bounds one invite exchange on either side.
const inviteTimeout = 2 * time.Minute

// maxInviteFrame bounds what either side reads: a request or a reply is a
// short JSON line.
const maxInviteFrame = 4 << 10

func readLine(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(io.LimitReader(r, maxInviteFrame+1))
	b, err := br.ReadBytes('\n')
	if len(b) > maxInviteFrame {
		return nil, fmt.Errorf("agent: invite message over %d bytes", maxInviteFrame)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: read invite message: %w", err)
	}
	return b, nil
}

func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// handleInvite serves a joiner presenting an invite secret. The joiner's
// key is the one libp2p authenticated; on success it is recorded with the
// roles the invite names.
func (a *Agent) handleInvite(s network.Stream) {
	defer s.Close()
	remote := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(inviteTimeout))
	reply := func(r invite.Reply) {
		if err := writeLine(s, r); err != nil {
			a.log.Warn("invite: reply failed", "peer", remote, "err", err)
		}
	}
	b, err := readLine(s)
	if err != nil {
		a.log.Warn("invite: bad request", "peer", remote, "err", err)
		s.Reset()
		return
	}
	var req invite.Request
	if err := json.Unmarshal(b, &req); err != nil {
		reply(invite.Reply{Error: "malformed invite request", Kind: "bad_invite"})
		return
	}
	pub, err := identity.PublicFromPeerID(remote)
	if err != nil {
		reply(invite.Reply{Error: "peer has no Ed25519 key", Kind: "bad_invite"})
		return
	}
	if pub.Equal(a.id.Public) {
		reply(invite.Reply{Error: "an agent cannot join itself", Kind: "bad_invite"})
		return
	}
	pd, err := invite.Redeem(a.opts.ConfigDir, req.Secret, time.Now())
	if err != nil {
		a.log.Warn("invite refused", "peer", remote, "err", err)
		reply(invite.Reply{Error: err.Error(), Kind: invite.Kind(err)})
		return
	}
	e, err := trust.Grant(a.opts.ConfigDir, pub, pd.Read, pd.Write, "", "invite")
	if err != nil {
		a.log.Error("invite: recording the joiner failed", "peer", remote, "err", err)
		reply(invite.Reply{Error: "the inviter could not record you; ask for a new invite", Kind: "internal"})
		return
	}
	a.rememberPeer(remote)
	a.peers.touch(remote)
	a.log.Info("invite redeemed", "peer", remote, "read", e.Read, "write", e.Write)
	reply(invite.Reply{OK: true, Read: pd.Read, Write: pd.Write})
}

// inviteError carries the inviter's refusal with its kind; it unwraps to
// the matching invite error (invite.ErrUsed, ...).
type inviteError struct {
	kind, msg string
	base      error
}

func (e *inviteError) Error() string { return e.msg }
func (e *inviteError) Unwrap() error { return e.base }
func (e *inviteError) Kind() string  { return e.kind }

// Join implements localapi.Backend.
func (a *Agent) Join(ctx context.Context, req localapi.JoinRequest) (localapi.JoinResult, error) {
	if !a.started() {
		return localapi.JoinResult{}, errStarting
	}
	inv, err := invite.Parse(req.Invite)
	if err != nil {
		return localapi.JoinResult{}, &kindError{kind: "bad_invite", err: err}
	}
	ai, onionHost, err := parseTarget(inv.Onion)
	if err != nil {
		return localapi.JoinResult{}, &kindError{kind: "bad_invite", err: err}
	}
	if ai.ID == a.id.PeerID() {
		return localapi.JoinResult{}, &kindError{kind: "bad_invite", err: errors.New("agent: that invite is this agent's own")}
	}
	inviter, err := identity.PublicFromPeerID(ai.ID)
	if err != nil {
		return localapi.JoinResult{}, &kindError{kind: "bad_invite", err: err}
	}
	// Refuse a bad alias now: once the inviter accepts, the invite is spent.
	if err := trust.CheckAlias(a.opts.ConfigDir, inviter, req.Alias); err != nil {
		return localapi.JoinResult{}, &kindError{kind: "bad_request", err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, inviteTimeout)
	defer cancel()
	if err := a.connectRetry(ctx, ai, onionHost); err != nil {
		return localapi.JoinResult{}, wrapKind(err)
	}
	s, err := a.host.Host().NewStream(network.WithAllowLimitedConn(ctx, "invite"), ai.ID, invite.Protocol)
	if err != nil {
		return localapi.JoinResult{}, wrapKind(fmt.Errorf("agent: open invite stream to %s: %w", ai.ID, err))
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := writeLine(s, invite.Request{Secret: inv.Secret}); err != nil {
		s.Reset()
		return localapi.JoinResult{}, wrapKind(fmt.Errorf("agent: send invite: %w", err))
	}
	b, err := readLine(s)
	if err != nil {
		s.Reset()
		return localapi.JoinResult{}, wrapKind(err)
	}
	var rep invite.Reply
	if err := json.Unmarshal(b, &rep); err != nil {
		return localapi.JoinResult{}, fmt.Errorf("agent: inviter's reply: %w", err)
	}
	if !rep.OK {
		base := invite.FromKind(rep.Kind)
		if base == nil {
			base = errors.New("invite refused")
		}
		return localapi.JoinResult{}, &inviteError{kind: rep.Kind, base: base,
			msg: fmt.Sprintf("agent: %s refused the invite: %s; nothing was changed (ask it for a new invite)", inv.Onion, rep.Error)}
	}
	read, write := req.Read, req.Write
	if !read && !write {
		read, write = true, true
	}
	e, err := trust.Grant(a.opts.ConfigDir, inviter, read, write, req.Alias, "join")
	if err != nil {
		return localapi.JoinResult{}, err
	}
	return localapi.JoinResult{
		PeerID: ai.ID.String(), OnionAddress: e.OnionAddress,
		GrantedRead: rep.Read, GrantedWrite: rep.Write, TrustedRead: e.Read, TrustedWrite: e.Write,
	}, nil
}
