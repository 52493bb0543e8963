package torctl

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits on what the reader accepts, so a misbehaving peer cannot make us
// allocate without bound. Tor's largest ordinary replies (GETINFO ns/all,
// config-text) are a few megabytes.
const (
	maxLineLen  = 1 << 20
	maxReplyLen = 64 << 20
)

// ErrMalformed is wrapped by every error caused by input that does not follow
// the control-spec reply grammar.
var ErrMalformed = errors.New("torctl: malformed reply")

// Reply is one complete reply (synchronous or asynchronous) from tor.
//
// control-spec §2.3:
//
//	Reply = SyncReply / AsyncReply
//	SyncReply = *(MidReplyLine / DataReplyLine) EndReplyLine
//	MidReplyLine = StatusCode "-" ReplyLine
//	DataReplyLine = StatusCode "+" ReplyLine CmdData
//	EndReplyLine = StatusCode SP ReplyLine
//	StatusCode = 3DIGIT
//
// "Multiple lines in a single reply from Tor to the controller are guaranteed
// to share the same status code."
type Reply struct {
	Code  int
	Lines []ReplyLine
}

// ReplyLine is one line of a reply: the text after the status code and
// separator and, for "+" lines, the dot-unstuffed data block that followed.
type ReplyLine struct {
	Text    string
	Data    string // lines joined by "\n", without a trailing newline
	HasData bool
}

// Async reports whether the reply is an asynchronous event (code 650).
func (r *Reply) Async() bool { return r.Code == 650 }

// OK reports whether the reply is a 2xx success.
func (r *Reply) OK() bool { return r.Code >= 200 && r.Code < 300 }

// Last returns the text of the final (EndReplyLine) line.
func (r *Reply) Last() string {
	if len(r.Lines) == 0 {
		return ""
	}
	return r.Lines[len(r.Lines)-1].Text
}

// ParseReply parses exactly one reply from b. Trailing bytes after the reply
// are an error, so that the fuzz target can check the whole input.
func ParseReply(b []byte) (*Reply, error) {
	br := bufio.NewReader(bytes.NewReader(b))
	r, err := ReadReply(br)
	if err != nil {
		return nil, err
	}
	if _, err := br.Peek(1); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after reply", ErrMalformed)
	}
	return r, nil
}

// ReadReply reads one reply from br. It accepts CRLF (what tor sends) and bare
// LF line endings. io.EOF is returned only when no byte of a reply was read;
// a reply cut short returns io.ErrUnexpectedEOF.
func ReadReply(br *bufio.Reader) (*Reply, error) {
	var (
		r     Reply
		total int
	)
	for {
		line, err := readLine(br)
		if err != nil {
			if err == io.EOF && len(r.Lines) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		total += len(line)
		code, sep, text, err := splitStatusLine(line)
		if err != nil {
			return nil, err
		}
		if len(r.Lines) == 0 {
			r.Code = code
		} else if code != r.Code {
			return nil, fmt.Errorf("%w: status code changed from %d to %d within a reply", ErrMalformed, r.Code, code)
		}
		rl := ReplyLine{Text: text}
		if sep == '+' {
			data, n, err := readData(br)
			if err != nil {
				return nil, err
			}
			total += n
			rl.Data, rl.HasData = data, true
		}
		if total > maxReplyLen {
			return nil, fmt.Errorf("%w: reply longer than %d bytes", ErrMalformed, maxReplyLen)
		}
		r.Lines = append(r.Lines, rl)
		if sep == ' ' {
			return &r, nil
		}
	}
}

// splitStatusLine splits `StatusCode ("-" / "+" / SP) ReplyText`.
func splitStatusLine(line string) (code int, sep byte, text string, err error) {
	if len(line) < 4 {
		// Tor always sends a separator; an end line with empty text still
		// has the space ("250 ").
		return 0, 0, "", fmt.Errorf("%w: short line %q", ErrMalformed, truncate(line))
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, 0, "", fmt.Errorf("%w: bad status code in %q", ErrMalformed, truncate(line))
		}
	}
	code, _ = strconv.Atoi(line[:3])
	sep = line[3]
	if sep != '-' && sep != '+' && sep != ' ' {
		return 0, 0, "", fmt.Errorf("%w: bad separator %q in %q", ErrMalformed, sep, truncate(line))
	}
	return code, sep, line[4:], nil
}

// readData reads a CmdData block.
//
// control-spec §2.3: "CmdData = *DataLine "." CRLF; DataLine = CRLF /
// "." 1*LineItem CRLF / NonDotItem *LineItem CRLF" and "If a line starts with
// a period, an additional period is prepended" (dot-stuffing), undone here.
func readData(br *bufio.Reader) (string, int, error) {
	var (
		sb    strings.Builder
		n     int
		first = true
	)
	for {
		line, err := readLine(br)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", 0, err
		}
		n += len(line) + 2
		if n > maxReplyLen {
			return "", 0, fmt.Errorf("%w: data block longer than %d bytes", ErrMalformed, maxReplyLen)
		}
		if line == "." {
			return sb.String(), n, nil
		}
		line = strings.TrimPrefix(line, ".")
		if !first {
			sb.WriteByte('\n')
		}
		first = false
		sb.WriteString(line)
	}
}

// readLine reads one line without its CRLF or LF terminator.
func readLine(br *bufio.Reader) (string, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := br.ReadLine()
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
		buf = append(buf, chunk...)
		if len(buf) > maxLineLen {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLineLen)
		}
		if !isPrefix {
			return string(buf), nil
		}
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Unquote parses a QuotedString at the start of s and returns its value and
// the rest of s after the closing quote.
//
// control-spec §2.1.1: "QuotedString = DQUOTE *qcontent DQUOTE" where
// backslash escapes the next character; tor also emits C escapes (\n, \t,
// \r, and octal \ooo) in strings it produces with esc_for_log().
func Unquote(s string) (value, rest string, err error) {
	if s == "" || s[0] != '"' {
		return "", s, fmt.Errorf("%w: quoted string must start with '\"'", ErrMalformed)
	}
	var sb strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return sb.String(), s[i+1:], nil
		case '\\':
			i++
			if i >= len(s) {
				return "", s, fmt.Errorf("%w: unterminated escape in quoted string", ErrMalformed)
			}
			switch e := s[i]; e {
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				// Up to three octal digits, value at most 0377.
				j, v := i, 0
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					v = v*8 + int(s[j]-'0')
					j++
				}
				if v > 0xff {
					return "", s, fmt.Errorf("%w: octal escape out of range", ErrMalformed)
				}
				sb.WriteByte(byte(v))
				i = j - 1
			default:
				sb.WriteByte(e)
			}
		default:
			sb.WriteByte(c)
		}
	}
	return "", s, fmt.Errorf("%w: unterminated quoted string", ErrMalformed)
}

// Quote returns s as a control-spec QuotedString. CR, LF and NUL are refused
// rather than escaped: no value we send legitimately contains them, and a
// refusal makes injection attempts visible.
func Quote(s string) (string, error) {
	if err := checkNoControl(s); err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			sb.WriteByte('\\')
		}
		sb.WriteByte(s[i])
	}
	sb.WriteByte('"')
	return sb.String(), nil
}

// Arg is one space-separated element of a reply line: either a bare word
// (Key set, HasValue false) or Key=Value with the value unquoted.
type Arg struct {
	Key      string
	Value    string
	HasValue bool
}

// ParseArgs splits a reply line such as
//
//	AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/run/tor/control.authcookie"
//	NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"
//
// into words and Key=Value pairs. Values are either a QuotedString or run to
// the next space (control-spec §3.1 "KEYWORD=VALUE", §4.1 events).
func ParseArgs(s string) ([]Arg, error) {
	var args []Arg
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return args, nil
		}
		end := strings.IndexAny(s, " =")
		if end < 0 {
			args = append(args, Arg{Key: s})
			return args, nil
		}
		if s[end] == ' ' {
			args = append(args, Arg{Key: s[:end]})
			s = s[end:]
			continue
		}
		key := s[:end]
		if key == "" {
			return nil, fmt.Errorf("%w: empty key in %q", ErrMalformed, truncate(s))
		}
		s = s[end+1:]
		if strings.HasPrefix(s, "\"") {
			v, rest, err := Unquote(s)
			if err != nil {
				return nil, err
			}
			if rest != "" && rest[0] != ' ' {
				return nil, fmt.Errorf("%w: junk after quoted value of %s", ErrMalformed, key)
			}
			args = append(args, Arg{Key: key, Value: v, HasValue: true})
			s = rest
			continue
		}
		v, rest, _ := strings.Cut(s, " ")
		args = append(args, Arg{Key: key, Value: v, HasValue: true})
		s = rest
	}
}

// KeyValues returns the Key=Value pairs of ParseArgs as a map (later keys win)
// and the bare words in order.
func KeyValues(s string) (kv map[string]string, words []string, err error) {
	args, err := ParseArgs(s)
	if err != nil {
		return nil, nil, err
	}
	kv = make(map[string]string)
	for _, a := range args {
		if a.HasValue {
			kv[a.Key] = a.Value
		} else {
			words = append(words, a.Key)
		}
	}
	return kv, words, nil
}

// parseLineValue splits a GETINFO/GETCONF/ADD_ONION line "key=value" where
// the value runs to the end of the line; a value that is a single complete
// QuotedString is unquoted (GETCONF quotes values that need escaping).
func parseLineValue(text string) (key, value string, hasValue bool, err error) {
	key, value, hasValue = strings.Cut(text, "=")
	if key == "" {
		return "", "", false, fmt.Errorf("%w: empty key in %q", ErrMalformed, truncate(text))
	}
	if hasValue && strings.HasPrefix(value, "\"") {
		v, rest, qerr := Unquote(value)
		if qerr == nil && rest == "" {
			value = v
		}
	}
	return key, value, hasValue, nil
}
