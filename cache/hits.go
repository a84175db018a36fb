package cache

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// HitWriter is Entry.Write (WriteNotModified, WriteRange) for the
// responses of fasthttp servers that all have the same settings
// (NoDefaultDate, NoDefaultContentType, header name normalising), at a
// fraction of the cost for entries served again and again: it keeps, per
// P, the headers it built for the last entries it wrote (in a few
// slots), and copies one into the response in one go instead of adding
// the stored fields one by one.
//
// Those settings are the ones of the header passed to Seed, which must be
// a server's response header as the server hands it to its handler
// (before anything reset it). The responses written get these settings
// (but a 416, which keeps its own). Until Seed is called, HitWriter's
// methods are Entry's.
//
// The kept headers are copies (of entries that are immutable): a
// HitWriter holds no reference to an entry, a request or a response,
// and its memory is a few kilobytes per P. The zero value is ready to
// use. Safe for concurrent use.
type HitWriter struct {
	// seed holds the settings: a header with nothing else in it.
	seed  atomic.Pointer[fasthttp.ResponseHeader]
	cache sync.Pool // *hitSlots
}

// hitSlotCount is how many headers a P keeps (a power of two).
const hitSlotCount = 8

// hitSlots are one P's headers, by entry ID and kind.
type hitSlots [hitSlotCount]hitSlot

type hitSlot struct {
	tag uint64 // the entry's ID<<2 | the kind; 0 for none
	// h is the header as written for the entry, with Age and the extra
	// field: age is the Age in h; named says whether h has the extra
	// field name with value.
	h           fasthttp.ResponseHeader
	age         int64
	named       bool
	name, value []byte
}

// The kinds of header a slot holds for its entry, as written by
const (
	hitWhole       = 1 // Write
	hitNotModified = 2 // WriteNotModified
	hitRange       = 3 // WriteRange, 206 (without Content-Range)
)

// Seed takes h's settings as those of every response Write will be given
// (the first call does; later ones are ignored). h must be a server's
// response header as the server passed it to the handler, before
// anything reset or replaced it: the settings are read by copying it.
// Safe for concurrent use.
func (w *HitWriter) Seed(h *fasthttp.ResponseHeader) {
	if w.seed.Load() != nil {
		return
	}
	seed := new(fasthttp.ResponseHeader)
	h.CopyTo(seed)
	// Only the settings are wanted: keep them and drop the content. (A
	// header read from bytes keeps its settings and resets the rest.)
	startResponse(seed, fasthttp.StatusOK, 0, nil)
	seed.Del(fasthttp.HeaderDate)
	w.seed.CompareAndSwap(nil, seed)
}

// entryIDs numbers entries for HitWriter's slots.
var entryIDs atomic.Uint64

// hitID returns e's ID, giving it one on first use.
func (e *Entry) hitID() uint64 {
	if id := e.id.Load(); id != 0 {
		return id
	}
	e.id.CompareAndSwap(0, entryIDs.Add(1))
	return e.id.Load()
}

// Write puts e into resp as the answer at now, exactly as e.Write does,
// but for the settings: resp gets the seeded ones; then it sets the
// field extra (as ResponseHeader.SetCanonical does: extra.Name must be
// canonical), unless extra.Name is nil. As for Entry.Write, do not Reset
// resp first. buf is scratch space and is returned for reuse. It
// allocates nothing once its slots have grown, but when a garbage
// collection has emptied them. Safe for concurrent use with other
// readers of e.
func (w *HitWriter) Write(e *Entry, resp *fasthttp.Response, now time.Time, buf []byte, extra Field) []byte {
	seed := w.seed.Load()
	if seed == nil {
		buf = e.Write(resp, now, buf)
		setExtra(&resp.Header, extra)
		return buf
	}
	buf = w.header(seed, e, hitWhole, &resp.Header, now, buf, extra)
	resp.SetBodyRaw(e.Body)
	return buf
}

// WriteNotModified is e.WriteNotModified as Write is e.Write.
func (w *HitWriter) WriteNotModified(e *Entry, resp *fasthttp.Response, now time.Time, buf []byte, extra Field) []byte {
	seed := w.seed.Load()
	if seed == nil {
		buf = e.WriteNotModified(resp, now, buf)
		setExtra(&resp.Header, extra)
		return buf
	}
	buf = w.header(seed, e, hitNotModified, &resp.Header, now, buf, extra)
	resp.ResetBody()
	return buf
}

// WriteRange is e.WriteRange as Write is e.Write.
func (w *HitWriter) WriteRange(e *Entry, resp *fasthttp.Response, start, end int, unsatisfiable bool, now time.Time, buf []byte, extra Field) []byte {
	seed := w.seed.Load()
	if seed == nil || unsatisfiable {
		// A 416 has no stored fields to copy.
		buf = e.WriteRange(resp, start, end, unsatisfiable, now, buf)
		setExtra(&resp.Header, extra)
		return buf
	}
	// Content-Range comes after Age, extra after both.
	buf = w.header(seed, e, hitRange, &resp.Header, now, buf, Field{})
	resp.Header.SetContentRange(start, end, len(e.Body))
	setExtra(&resp.Header, extra)
	resp.SetBodyRaw(e.Body[start : end+1 : end+1])
	return buf
}

func setExtra(h *fasthttp.ResponseHeader, extra Field) {
	if extra.Name != nil {
		h.SetCanonical(extra.Name, extra.Value)
	}
}

// header puts the header of the given kind for e into h, with Age at now
// and extra: a copy of the one in this P's slot for it, built there
// first if it is not, or brought up to date if its Age or extra's value
// differ.
func (w *HitWriter) header(seed *fasthttp.ResponseHeader, e *Entry, kind uint64, h *fasthttp.ResponseHeader, now time.Time, buf []byte, extra Field) []byte {
	slots, _ := w.cache.Get().(*hitSlots)
	if slots == nil {
		slots = new(hitSlots)
	}
	id := e.hitID()
	tag := id<<2 | kind
	sl := &slots[(id*3+kind)%hitSlotCount]
	age := ageSeconds(e, now)
	if sl.tag != tag || sl.named != (extra.Name != nil) || !bytes.Equal(sl.name, extra.Name) {
		// Built as Entry's methods and setExtra would, one after the
		// other: the fields, Age, extra.
		sl.tag = 0
		seed.CopyTo(&sl.h)
		switch kind {
		case hitWhole:
			buf = e.writeFields(&sl.h, e.Status, buf, false)
		case hitNotModified:
			buf = e.writeNotModifiedFields(&sl.h, buf)
		case hitRange:
			buf = e.writeFields(&sl.h, fasthttp.StatusPartialContent, buf, true)
		}
		buf = strconv.AppendInt(buf[:0], age, 10)
		sl.h.AddBytesKV(ageName, buf)
		setExtra(&sl.h, extra)
		sl.age = age
		sl.named = extra.Name != nil
		sl.name = append(sl.name[:0], extra.Name...)
		sl.value = append(sl.value[:0], extra.Value...)
		sl.tag = tag
	} else {
		// Each replaces the field in place, where the build put it.
		if sl.age != age {
			buf = strconv.AppendInt(buf[:0], age, 10)
			sl.h.SetCanonical(ageName, buf)
			sl.age = age
		}
		if sl.named && !bytes.Equal(sl.value, extra.Value) {
			sl.h.SetCanonical(extra.Name, extra.Value)
			sl.value = append(sl.value[:0], extra.Value...)
		}
	}
	closing := h.ConnectionClose()
	sl.h.CopyTo(h)
	if closing {
		h.SetConnectionClose()
	}
	w.cache.Put(slots)
	return buf
}
