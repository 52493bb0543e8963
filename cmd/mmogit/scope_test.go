package main

import (
	"strings"
	"testing"
)

// TestShowRecallScope: show and recall list our own memories and trusted
// peers' by default, label authors by alias or whole key, list everything
// with --all, and take --author as a whole name, never a prefix.
func TestShowRecallScope(t *testing.T) {
	a, b, c := newAgent(t, phraseA), newAgent(t, phraseB), newAgent(t, phraseC)
	shareRepo(t, a, b)
	shareRepo(t, a, c)
	a.run("remember", "--public", "-t", "learning", "--tags", "scope", "from a")
	b.run("remember", "--public", "-t", "learning", "--tags", "scope", "from b")
	c.run("remember", "--public", "-t", "learning", "--tags", "scope", "from c")
	bHex, cHex := b.identity().PubHex(), c.identity().PubHex()
	a.run("trust", "add", b.identity().OnionAddress(), "--read", "--alias", "bob")

	type row struct {
		Author      string `json:"author"`
		AuthorLabel string `json:"author_label"`
		Content     string `json:"content"`
	}
	authors := func(args ...string) map[string]string {
		t.Helper()
		var rows []row
		a.json(&rows, args...)
		got := map[string]string{}
		for _, r := range rows {
			got[r.Author] = r.AuthorLabel
		}
		return got
	}
	aHex := a.identity().PubHex()
	for _, tc := range []struct {
		args []string
		want map[string]string
	}{
		{[]string{"show"}, map[string]string{aHex: aHex, bHex: "bob"}},
		{[]string{"recall", "--tag", "scope"}, map[string]string{aHex: aHex, bHex: "bob"}},
		{[]string{"show", "--all"}, map[string]string{aHex: aHex, bHex: "bob", cHex: cHex}},
		{[]string{"recall", "--all", "--tag", "scope"}, map[string]string{aHex: aHex, bHex: "bob", cHex: cHex}},
		{[]string{"show", "--author", "bob"}, map[string]string{bHex: "bob"}},
		{[]string{"recall", "--author", c.identity().PeerID().String()}, map[string]string{cHex: cHex}},
		{[]string{"show", "--author", cHex}, map[string]string{cHex: cHex}},
	} {
		got := authors(tc.args...)
		if len(got) != len(tc.want) {
			t.Errorf("%v lists authors %v, want %v", tc.args, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%v: author %.8s labelled %q, want %q", tc.args, k, got[k], v)
			}
		}
	}
	if h := a.run("show"); !strings.Contains(h, " bob: {") || !strings.Contains(h, "from b") || strings.Contains(h, "from c") {
		t.Errorf("human show:\n%s", h)
	}
	for _, cmd := range []string{"show", "recall"} {
		_, err := a.try(cmd, "--author", cHex[:8])
		if err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("%s --author <8 hex>: %v, want a refusal naming the prefix", cmd, err)
		}
	}
}
