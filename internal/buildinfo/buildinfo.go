// Package buildinfo writes the "version" line of edge's commands: the
// version given at build time (make build sets main.version to "git
// describe") and what the Go toolchain recorded in the binary
// (runtime/debug.ReadBuildInfo): the VCS revision, its commit time,
// whether the tree had local changes, and the Go version and platform.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// String is Format with this binary's build information:
//
//	edge v1.4.0 (revision 8eb89a6f…, commit time 2025-06-01T10:00:00Z, modified; go1.26.8 linux/amd64)
func String(prog, version string) string {
	info, _ := debug.ReadBuildInfo()
	return Format(prog, version, info)
}

// Format formats the version line of prog; info may be nil. Any goroutine
// may call it.
func Format(prog, version string, info *debug.BuildInfo) string {
	rev, at, modified := "unknown", "", false
	goVersion := runtime.Version()
	if info != nil {
		// "go install …@v1.4.0" records the module version, not -ldflags.
		if version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version = info.Main.Version
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	parts := []string{"revision " + rev}
	if at != "" {
		parts = append(parts, "commit time "+at)
	}
	if modified {
		parts = append(parts, "modified")
	}
	return fmt.Sprintf("%s %s (%s; %s %s/%s)", prog, version, strings.Join(parts, ", "), goVersion, runtime.GOOS, runtime.GOARCH)
}
