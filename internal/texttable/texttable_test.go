package texttable

import (
	"bytes"
	"testing"
)

func TestWrite(t *testing.T) {
	var b bytes.Buffer
	Write(&b, []string{"NAME\tADDRESS\tNOTE", "web1\t10.0.0.1:80\t", "a-long-name\t::1\tx"})
	want := "  NAME         ADDRESS      NOTE\n" +
		"  web1         10.0.0.1:80\n" +
		"  a-long-name  ::1          x\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}
