package cache

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestAppendVaryValueAcceptLanguage(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"one", []string{"en"}, "en"},
		{"order of equal weights", []string{"fr, en"}, "en,fr"},
		{"case", []string{"EN-us, Fr"}, "en-us,fr"},
		{"whitespace", []string{" en ,\tfr "}, "en,fr"},
		{"weights order", []string{"en;q=0.5, fr, de;q=0.8"}, "fr,de;q=0.8,en;q=0.5"},
		{"q=1 dropped", []string{"en;q=1.0, fr"}, "en,fr"},
		{"two lines", []string{"fr", "en"}, "en,fr"},
		{"other parameter left alone", []string{"fr;x=1, en"}, "fr;x=1,en"},
		{"empty elements", []string{"fr,,en"}, "en,fr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			for _, l := range tt.lines {
				h.Add("Accept-Language", l)
			}
			if got := string(AppendVaryValue([]byte("x"), &h, "accept-language")); got != "x"+tt.want {
				t.Errorf("got %q, want %q", got, "x"+tt.want)
			}
		})
	}
	t.Run("other fields keep their order", func(t *testing.T) {
		var h fasthttp.RequestHeader
		h.Add("Accept-Encoding", "gzip, br")
		if got := string(AppendVaryValue(nil, &h, "accept-encoding")); got != "gzip,br" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("allocates nothing", func(t *testing.T) {
		var h fasthttp.RequestHeader
		h.Add("Accept-Language", "fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5")
		buf := make([]byte, 0, 256)
		if n := testing.AllocsPerRun(100, func() { buf = AppendVaryValue(buf[:0], &h, "Accept-Language") }); n != 0 {
			t.Errorf("%v allocations", n)
		}
	})
}
