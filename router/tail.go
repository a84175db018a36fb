package router

import (
	"time"

	"github.com/valyala/fasthttp"
)

// tailHub fans finished requests out to live followers (placeholder).
type tailHub struct{}

// active reports whether any follower is attached.
func (h *tailHub) active() bool { return false }

// publish hands one finished request to the followers.
func (h *tailHub) publish(ctx *fasthttp.RequestCtx, out *outcome, status int, dur time.Duration) {}
