// Package texttable writes the aligned, indented tables of edge's
// human-readable reports (edge check's summary, edge explain).
package texttable

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Write prints rows (cells separated by tabs) as a table aligned in
// columns two spaces apart, each line indented by two spaces and without
// trailing blanks. Safe for concurrent use (it keeps no state).
func Write(w io.Writer, rows []string) {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	_ = tw.Flush()
	for line := range strings.SplitSeq(strings.TrimRight(b.String(), "\n"), "\n") {
		fmt.Fprintln(w, "  "+strings.TrimRight(line, " "))
	}
}
