package completion

import (
	"slices"
	"testing"
)

func TestParseFlagDefaults(t *testing.T) {
	text := "Usage of x:\n" +
		"  -config string\n    \tconfiguration file (default \"edge.yaml\")\n" +
		"  -dry-run\n    \tprint the plan, change nothing\n" +
		"  -node value\n    \ta node (repeatable)\n    \tsecond line\n" +
		"  -q\tquiet\n" +
		"  -token string\n    \tadmin bearer token (default $EDGE_ADMIN_TOKEN) (default \"secret\")\n"
	got := ParseFlagDefaults(text)
	want := []Flag{
		{"config", "string", "configuration file"},
		{"dry-run", "", "print the plan, change nothing"},
		{"node", "value", "a node (repeatable)"},
		{"q", "", "quiet"},
		{"token", "string", "admin bearer token"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}
