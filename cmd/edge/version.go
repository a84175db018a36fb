package main

import "github.com/edge-router/edge/internal/buildinfo"

// versionString is what "edge version" prints (see package buildinfo).
func versionString() string { return buildinfo.String("edge", version) }
