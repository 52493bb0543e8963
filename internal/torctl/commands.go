package torctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrBadArgument is wrapped by errors for command arguments that would break
// the line-based protocol (CR, LF, NUL, spaces in keywords, ...).
var ErrBadArgument = errors.New("torctl: bad argument")

// checkNoControl refuses CR, LF and NUL anywhere in a command line: each
// could end our command early and inject another one.
func checkNoControl(s string) error {
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("%w: control character %q", ErrBadArgument, s[i])
	}
	return nil
}

// checkKeyword accepts the characters tor uses in config keys, GETINFO keys,
// event and signal names: letters, digits and "_-/.:" — no spaces, quotes,
// '=' or control characters.
func checkKeyword(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty keyword", ErrBadArgument)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '-' || c == '/' || c == '.' || c == ':' || c == '@':
		default:
			return fmt.Errorf("%w: character %q in %q", ErrBadArgument, c, truncate(s))
		}
	}
	return nil
}

func keywordLine(cmd string, keys []string) (string, error) {
	for _, k := range keys {
		if err := checkKeyword(k); err != nil {
			return "", fmt.Errorf("torctl: %s: %w", strings.ToLower(cmd), err)
		}
	}
	if len(keys) == 0 {
		return cmd, nil
	}
	return cmd + " " + strings.Join(keys, " "), nil
}

// GetInfo asks for the given keys (GETINFO) and returns their values.
//
// control-spec §3.9: reply lines are `250-keyword=value` or, for values that
// span lines, `250+keyword=` followed by a data block; then `250 OK`.
func (c *Conn) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("torctl: getinfo: %w: no keys", ErrBadArgument)
	}
	line, err := keywordLine("GETINFO", keys)
	if err != nil {
		return nil, err
	}
	r, err := c.Do(ctx, line)
	if err != nil {
		return nil, fmt.Errorf("torctl: getinfo: %w", err)
	}
	return parseGetInfo(r)
}

func parseGetInfo(r *Reply) (map[string]string, error) {
	out := make(map[string]string)
	for i, l := range r.Lines {
		if i == len(r.Lines)-1 && !l.HasData && l.Text == "OK" {
			break
		}
		k, v, ok, err := parseLineValue(l.Text)
		if err != nil {
			return nil, fmt.Errorf("torctl: getinfo: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("torctl: getinfo: %w: no '=' in %q", ErrMalformed, truncate(l.Text))
		}
		if l.HasData {
			v = l.Data
		}
		out[k] = v
	}
	return out, nil
}

// GetConf returns the values of configuration options (GETCONF). An option
// may have several values (e.g. several SocksPort lines); an option at its
// default is present with no values.
func (c *Conn) GetConf(ctx context.Context, keys ...string) (map[string][]string, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("torctl: getconf: %w: no keys", ErrBadArgument)
	}
	line, err := keywordLine("GETCONF", keys)
	if err != nil {
		return nil, err
	}
	r, err := c.Do(ctx, line)
	if err != nil {
		return nil, fmt.Errorf("torctl: getconf: %w", err)
	}
	out := make(map[string][]string)
	for _, l := range r.Lines {
		k, v, ok, err := parseLineValue(l.Text)
		if err != nil {
			return nil, fmt.Errorf("torctl: getconf: %w", err)
		}
		if _, seen := out[k]; !seen {
			out[k] = nil
		}
		if ok {
			out[k] = append(out[k], v)
		}
	}
	return out, nil
}

// KeyValue is one option assignment for SetConf.
type KeyValue struct {
	Key   string
	Value string
}

// buildSetConf builds `SETCONF 1*(SP keyword ["=" value])` (control-spec
// §3.1), always quoting values.
func buildSetConf(cmd string, settings []KeyValue) (string, error) {
	if len(settings) == 0 {
		return "", fmt.Errorf("%w: no settings", ErrBadArgument)
	}
	var sb strings.Builder
	sb.WriteString(cmd)
	for _, s := range settings {
		if err := checkKeyword(s.Key); err != nil {
			return "", err
		}
		q, err := Quote(s.Value)
		if err != nil {
			return "", err
		}
		sb.WriteString(" " + s.Key + "=" + q)
	}
	return sb.String(), nil
}

// SetConf sets configuration options (SETCONF). Repeating a key sets a
// multi-valued option to all given values.
func (c *Conn) SetConf(ctx context.Context, settings ...KeyValue) error {
	line, err := buildSetConf("SETCONF", settings)
	if err != nil {
		return fmt.Errorf("torctl: setconf: %w", err)
	}
	if _, err := c.Do(ctx, line); err != nil {
		return fmt.Errorf("torctl: setconf: %w", err)
	}
	return nil
}

// ResetConf returns options to their defaults (RESETCONF).
func (c *Conn) ResetConf(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return fmt.Errorf("torctl: resetconf: %w: no keys", ErrBadArgument)
	}
	line, err := keywordLine("RESETCONF", keys)
	if err != nil {
		return err
	}
	if _, err := c.Do(ctx, line); err != nil {
		return fmt.Errorf("torctl: resetconf: %w", err)
	}
	return nil
}

// Signal sends SIGNAL name (e.g. "NEWNYM", "SHUTDOWN", "RELOAD").
func (c *Conn) Signal(ctx context.Context, name string) error {
	line, err := keywordLine("SIGNAL", []string{name})
	if err != nil {
		return err
	}
	if _, err := c.Do(ctx, line); err != nil {
		return fmt.Errorf("torctl: signal %s: %w", name, err)
	}
	return nil
}

// TakeOwnership makes tor exit when this connection closes (TAKEOWNERSHIP,
// control-spec §3.23); pair it with __OwningControllerProcess in the torrc.
func (c *Conn) TakeOwnership(ctx context.Context) error {
	if _, err := c.Do(ctx, "TAKEOWNERSHIP"); err != nil {
		return fmt.Errorf("torctl: takeownership: %w", err)
	}
	return nil
}

// DropOwnership undoes TakeOwnership (DROPOWNERSHIP).
func (c *Conn) DropOwnership(ctx context.Context) error {
	if _, err := c.Do(ctx, "DROPOWNERSHIP"); err != nil {
		return fmt.Errorf("torctl: dropownership: %w", err)
	}
	return nil
}
