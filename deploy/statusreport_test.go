package deploy

import (
	"testing"
	"time"
)

func TestAgeAndSizeStrings(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s ago", 42 * time.Second: "42s ago", 5 * time.Minute: "5m ago",
		3*time.Hour + 59*time.Minute: "3h ago", 47 * time.Hour: "47h ago", 50 * time.Hour: "2d ago",
		-time.Hour: "in the future",
	} {
		if got := ageString(d); got != want {
			t.Errorf("ageString(%v) = %q, want %q", d, got, want)
		}
	}
	for b, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := humanBytes(b); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", b, got, want)
		}
	}
}
