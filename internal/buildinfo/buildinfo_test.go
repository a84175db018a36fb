package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "8eb89a6f0123456789abcdef0123456789abcdef"},
			{Key: "vcs.time", Value: "2025-06-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	got := Format("edge", "v1.4.0", info)
	for _, want := range []string{"edge v1.4.0 (", "revision 8eb89a6f0123456789abcdef0123456789abcdef", "commit time 2025-06-01T10:00:00Z", ", modified;", "go1.26.8"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q does not contain %q", got, want)
		}
	}
	info.Settings[3].Value = "false"
	if got := Format("edge", "v1.4.0", info); strings.Contains(got, "modified") {
		t.Errorf("%q: a clean tree is not modified", got)
	}
	// go install …@v1.5.0 records the module version; -ldflags wins over it.
	info.Main.Version = "v1.5.0"
	if got := Format("edge", "dev", info); !strings.HasPrefix(got, "edge v1.5.0 (") {
		t.Errorf("%q: want the module version when no -ldflags version is set", got)
	}
	if got := Format("edge", "v1.4.0", info); !strings.HasPrefix(got, "edge v1.4.0 (") {
		t.Errorf("%q: want the -ldflags version", got)
	}
	if got := Format("edge", "dev", nil); !strings.HasPrefix(got, "edge dev (revision unknown; go") {
		t.Errorf("%q: want revision unknown without build information", got)
	}
}
