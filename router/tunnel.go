package router

import "context"

// tunnelSet tracks open tunnels (placeholder until tunnels land).
type tunnelSet struct{}

// shutdown waits for tunnels to end until ctx is done, then closes the rest.
func (t *tunnelSet) shutdown(ctx context.Context) {}
