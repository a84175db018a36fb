//go:build race

package cache

// raceEnabled: the race detector makes sync.Pool drop a share of what is
// put in it, so that pooled memory is allocated again.
const raceEnabled = true
