package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/mmogit/mmogit/internal/localapi"
)

func TestReportErrorJSON(t *testing.T) {
	tests := []struct {
		err  error
		code int
		kind string
	}{
		{&localapi.APIError{Status: 502, Msg: "peer offline", Kind: "onion_unreachable"}, exitAgentFailure, "onion_unreachable"},
		{fmt.Errorf("connect: %w", &localapi.APIError{Status: 400, Msg: "bad", Kind: "bad_address"}), exitUsage, "bad_address"},
		{&localapi.NotRunningError{Socket: "/x/agent.sock", Err: errors.New("no such file")}, exitNotRunning, "not_running"},
		{&usageError{errors.New("unknown flag: --x")}, exitUsage, "usage"},
		{errors.New("disk on fire"), exitFailure, "error"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := reportError(tc.err, true, &out, &errb)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.err, code, tc.code)
		}
		var got map[string]string
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v: stdout %q is not JSON: %v", tc.err, out.String(), err)
		}
		if got["kind"] != tc.kind || got["error"] != tc.err.Error() {
			t.Errorf("%v: printed %v, want kind %q", tc.err, got, tc.kind)
		}
		if errb.Len() == 0 {
			t.Errorf("%v: nothing on stderr", tc.err)
		}
	}
	// Without --json, stdout stays empty; an exitError was reported already.
	var out, errb bytes.Buffer
	if code := reportError(errors.New("x"), false, &out, &errb); code != exitFailure || out.Len() != 0 {
		t.Errorf("plain error: code %d, stdout %q", code, out.String())
	}
	out.Reset()
	errb.Reset()
	if code := reportError(&exitError{code: 4}, true, &out, &errb); code != 4 || out.Len()+errb.Len() != 0 {
		t.Errorf("exitError: code %d, printed %q %q", code, out.String(), errb.String())
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	root := newRootCmd()
	markUsageErrors(root)
	root.SetArgs([]string{"sync", "a", "b"})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	err := root.Execute()
	if code, kind := errorInfo(err); code != exitUsage || kind != "usage" {
		t.Errorf("too many args: %v gives %d %q", err, code, kind)
	}
}
