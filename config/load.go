package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Path is the field, e.g. "routes[2].match.path_regex" or
	// "upstreams.app.nodes[1].address"; empty for the file as a whole.
	// Map keys that are not plain names are quoted: upstreams["a b"].
	Path string
	// Line is the 1-based line of the field in the file, or of its nearest
	// ancestor present in the file; 0 when unknown.
	Line int
	// Msg says what is wrong, in lower case.
	Msg string
}

// ValidationError lists every problem found in a configuration. Load,
// Parse and Validate return it for any problem with the content, so that
// callers can use errors.As to get at the problems.
type ValidationError struct {
	// File is the path of the configuration file, as given to Load or Parse.
	File string
	// Problems are sorted by line, then path.
	Problems []Problem
}

// Error lists the problems, one per line, as "file:line: path: msg".
func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		return formatProblem(e.File, Problem{Msg: "invalid configuration"})
	}
	ps := slices.Clone(e.Problems)
	sortProblems(ps)
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(formatProblem(e.File, p))
	}
	return b.String()
}

func formatProblem(file string, p Problem) string {
	var b strings.Builder
	switch {
	case file != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", file, p.Line)
	case file != "":
		b.WriteString(file + ": ")
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.Path, b.Path))
	})
}

// newValidationError returns nil for no problems, else a *ValidationError
// with the problems sorted.
func newValidationError(file string, ps []Problem) error {
	if len(ps) == 0 {
		return nil
	}
	sortProblems(ps)
	return &ValidationError{File: file, Problems: ps}
}

// Load reads the configuration file at path, expands environment variables
// from the process environment, and returns the defaulted and validated
// configuration. It returns a *ValidationError for any problem with the
// content, and a wrapped *fs.PathError when the file cannot be read.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse parses a configuration file's content; file names it in problems
// and becomes Config.File. It
//
//   - expands ${VAR} and ${VAR:-default} in the raw text, everywhere
//     including comments, with lookup (nil means no variable is set); the
//     default applies when VAR is unset or empty; "$$" is a literal "$", and
//     any other "$" is left as is; a ${VAR} whose VAR is unset is a problem.
//     Values are inserted as is and then read as YAML, so quote a reference
//     ("${TOKEN}") whose value may contain characters such as ": " or "#";
//     line numbers stay those of the file even if a value has line breaks;
//   - decodes exactly one YAML document strictly: unknown fields, duplicate
//     keys and values of the wrong type are problems;
//   - applies the defaults documented on the types, for fields absent from
//     the file (an explicit value, such as a zero timeout, is validated as
//     written; max_body_bytes: 0 means no limit);
//   - validates the result.
//
// Every problem found is reported, with its field path and line, in one
// *ValidationError.
func Parse(data []byte, file string, lookup func(string) (string, bool)) (*Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	text, lm, probs := expandEnv(data, lookup)
	envLines := make(map[int]bool, len(probs))
	for _, p := range probs {
		envLines[p.Line] = true
	}
	// Problems on a line where a variable could not be expanded are most
	// likely caused by it: report the variable only.
	fail := func(more ...Problem) (*Config, error) {
		for _, p := range more {
			p.Line = lm.orig(p.Line)
			if p.Line == 0 || !envLines[p.Line] {
				probs = append(probs, p)
			}
		}
		return nil, newValidationError(file, probs)
	}

	root, p := parseDocument(text)
	if p != nil {
		return fail(*p)
	}

	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	idx := buildIndex(root)
	idx.lm = lm
	var decodeProbs []Problem
	if err := dec.Decode(cfg); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return fail(yamlProblem(err))
		}
		for _, s := range te.Errors {
			p, skipPath, ok := idx.typeProblem(s)
			decodeProbs = append(decodeProbs, p)
			if ok {
				idx.failed = append(idx.failed, skipPath)
			}
		}
	}

	cfg.File = file
	cfg.applyDefaults(idx.isSet)
	for _, p := range cfg.validate() {
		// Problems with a field that failed to decode would only repeat it.
		if skipped(p.Path, idx.failed) {
			continue
		}
		p.Line = idx.line(p.Path) // mapped to the file's lines by fail
		decodeProbs = append(decodeProbs, p)
	}
	if len(decodeProbs) > 0 || len(probs) > 0 {
		return fail(decodeProbs...)
	}
	return cfg, nil
}

// skipped reports whether path is one of skip or below one of them.
func skipped(path string, skip []string) bool {
	for _, s := range skip {
		if s == "" || isUnder(path, s) {
			return true
		}
	}
	return false
}

// isUnder reports whether path is anc or a descendant of it.
func isUnder(path, anc string) bool {
	if !strings.HasPrefix(path, anc) {
		return false
	}
	rest := path[len(anc):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// parseDocument parses text as exactly one YAML document and returns its
// root node, which is a mapping.
func parseDocument(text []byte) (*yaml.Node, *Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Problem{Msg: "configuration is empty"}
		}
		p := yamlProblem(err)
		return nil, &p
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case err == nil:
		return nil, &Problem{Line: second.Line, Msg: "more than one YAML document: the configuration must be a single document"}
	case !errors.Is(err, io.EOF):
		p := yamlProblem(err)
		return nil, &p
	}
	if len(doc.Content) == 0 {
		return nil, &Problem{Msg: "configuration is empty"}
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, &Problem{Msg: "configuration is empty"}
	}
	if resolveAlias(root).Kind != yaml.MappingNode {
		return nil, &Problem{Line: root.Line, Msg: "the configuration must be a mapping of settings such as \"listeners:\" and \"routes:\", got " + describeNode(root)}
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)

// yamlProblem turns a yaml.v3 error into a Problem, with the line when the
// message has one.
func yamlProblem(err error) Problem {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{Line: line, Msg: m[2]}
	}
	return Problem{Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// lineMap maps the lines of the expanded text to those of the file: a
// value with line breaks adds lines. lm[i] is the file's line of expanded
// line i+1; nil means the identity.
type lineMap []int

func (lm lineMap) orig(line int) int {
	if line < 1 || line > len(lm) {
		return line
	}
	return lm[line-1]
}

// expandEnv expands ${VAR}, ${VAR:-default} and $$ in data. It returns the
// expanded text, the file's line of each of its lines, and a problem for
// each reference that cannot be expanded.
func expandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, lineMap, []Problem) {
	if bytes.IndexByte(data, '$') < 0 {
		return data, nil, nil
	}
	lm := lineMap{1}
	insert := func(out *bytes.Buffer, v []byte, line int) {
		out.Write(v)
		for range bytes.Count(v, []byte{'\n'}) {
			lm = append(lm, line)
		}
	}
	var out bytes.Buffer
	out.Grow(len(data))
	var probs []Problem
	line := 1
	for i := 0; i < len(data); {
		c := data[i]
		if c == '\n' {
			line++
			lm = append(lm, line)
		}
		if c != '$' || i+1 >= len(data) || (data[i+1] != '$' && data[i+1] != '{') {
			out.WriteByte(c)
			i++
			continue
		}
		if data[i+1] == '$' {
			out.WriteByte('$')
			i += 2
			continue
		}
		// ${...}: the reference must close on the same line.
		eol := bytes.IndexByte(data[i:], '\n')
		if eol < 0 {
			eol = len(data)
		} else {
			eol += i
		}
		j := i + 2
		for j < eol && isNameByte(data[j], j == i+2) {
			j++
		}
		name := string(data[i+2 : j])
		switch {
		case name != "" && j < eol && data[j] == '}':
			if v, ok := lookup(name); ok {
				insert(&out, []byte(v), line)
			} else {
				probs = append(probs, Problem{Line: line, Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)})
			}
			i = j + 1
		case name != "" && j+1 < eol && data[j] == ':' && data[j+1] == '-':
			end := bytes.IndexByte(data[j+2:eol], '}')
			if end < 0 {
				probs = append(probs, Problem{Line: line, Msg: fmt.Sprintf("unclosed variable reference %q: missing \"}\"", data[i:eol])})
				i = eol
				break
			}
			def := data[j+2 : j+2+end]
			if v, ok := lookup(name); ok && v != "" {
				insert(&out, []byte(v), line)
			} else {
				out.Write(def)
			}
			i = j + 2 + end + 1
		default:
			end := bytes.IndexByte(data[i:eol], '}')
			if end < 0 {
				probs = append(probs, Problem{Line: line, Msg: fmt.Sprintf("unclosed variable reference %q: missing \"}\"", data[i:eol])})
				i = eol
				break
			}
			probs = append(probs, Problem{Line: line, Msg: fmt.Sprintf("invalid variable reference %q: use ${NAME} or ${NAME:-default}, where NAME is letters, digits and '_', or $$ for a literal \"$\"", data[i:i+end+1])})
			i += end + 1
		}
	}
	return out.Bytes(), lm, probs
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || !first && c >= '0' && c <= '9'
}

// nodeIndex maps the field paths of a parsed file to line numbers.
type nodeIndex struct {
	lines  map[string]int        // path → line of its key (or item)
	set    map[string]bool       // paths given a non-null value
	keys   map[keyPos]string     // mapping key → path of its value
	byLine map[int][]indexedNode // value nodes by the line they start on
	lm     lineMap               // expanded text's lines to the file's
	failed []string              // paths that failed to decode
	budget int                   // nodes left to visit, against alias bombs
	active map[*yaml.Node]bool   // aliases being walked, against cycles
}

type keyPos struct {
	line int
	key  string
}

type indexedNode struct {
	path string
	node *yaml.Node
}

// maxIndexNodes bounds the nodes buildIndex visits; aliases could
// otherwise make the walk exponential. Beyond it, lines are those of the
// nearest ancestor indexed.
const maxIndexNodes = 1 << 18

func buildIndex(root *yaml.Node) *nodeIndex {
	idx := &nodeIndex{
		lines:  map[string]int{},
		set:    map[string]bool{},
		keys:   map[keyPos]string{},
		byLine: map[int][]indexedNode{},
		budget: maxIndexNodes,
		active: map[*yaml.Node]bool{},
	}
	if root != nil {
		idx.lines[""] = root.Line
		idx.walk(root, "")
	}
	return idx
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// record notes the value node n at path, first defined on line.
func (x *nodeIndex) record(path string, line int, n *yaml.Node) {
	x.lines[path] = line
	r := resolveAlias(n)
	x.set[path] = !(r.Kind == yaml.ScalarNode && r.ShortTag() == "!!null")
}

func (x *nodeIndex) walk(n *yaml.Node, path string) {
	if x.budget <= 0 {
		return
	}
	x.budget--
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || x.active[n] {
			return
		}
		x.active[n] = true
		x.walk(n.Alias, path)
		delete(x.active, n)
		return
	}
	x.byLine[n.Line] = append(x.byLine[n.Line], indexedNode{path, n})
	switch n.Kind {
	case yaml.MappingNode:
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			p := joinKey(path, k.Value)
			x.keys[keyPos{k.Line, k.Value}] = p
			x.record(p, k.Line, v)
			x.walk(v, p)
		}
		// Merged keys are lower priority than the mapping's own, and the
		// first merged mapping wins over later ones.
		for _, m := range merges {
			m = resolveAlias(m)
			var maps []*yaml.Node
			switch m.Kind {
			case yaml.MappingNode:
				maps = []*yaml.Node{m}
			case yaml.SequenceNode:
				for _, e := range m.Content {
					maps = append(maps, resolveAlias(e))
				}
			}
			for _, mm := range maps {
				if mm.Kind != yaml.MappingNode {
					continue
				}
				for i := 0; i+1 < len(mm.Content); i += 2 {
					k, v := mm.Content[i], mm.Content[i+1]
					p := joinKey(path, k.Value)
					if _, ok := x.lines[p]; ok || k.ShortTag() == "!!merge" {
						continue
					}
					x.record(p, k.Line, v)
					x.walk(v, p)
				}
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p := joinIndex(path, i)
			x.record(p, e.Line, e)
			x.walk(e, p)
		}
	}
}

// joinKey returns the path of key in the mapping at parent: parent.key,
// or parent["key"] when key is not a plain name.
func joinKey(parent, key string) string {
	if !plainKey(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func joinIndex(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

func plainKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isSet reports whether the file gave path a non-null value that decoded.
// A field that failed to decode keeps its zero value: it then gets its
// default, rather than problems that are consequences of the zero.
func (x *nodeIndex) isSet(path string) bool {
	return x.set[path] && !skipped(path, x.failed)
}

// line returns the line of path, or of its nearest ancestor in the file.
func (x *nodeIndex) line(path string) int {
	if l, ok := x.lines[path]; ok {
		return l
	}
	for i := len(path) - 1; i > 0; i-- {
		if path[i] != '.' && path[i] != '[' {
			continue
		}
		if l, ok := x.lines[path[:i]]; ok {
			return l
		}
	}
	return x.lines[""]
}

var (
	typeErrRE  = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	unknownRE  = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	dupKeyRE   = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	dupFieldRE = regexp.MustCompile(`^field (.+) already set in type (\S+)$`)
	cannotRE   = regexp.MustCompile("(?s)^cannot unmarshal (!!\\w+|\\S+)(?: `(.*)`)? into (\\S+)$")
)

// typeProblem turns one message of a *yaml.TypeError into a Problem. It
// also returns the path below which validation problems are only
// consequences of this one, and whether that path is known.
func (x *nodeIndex) typeProblem(s string) (p Problem, skip string, ok bool) {
	m := typeErrRE.FindStringSubmatch(s)
	if m == nil {
		return Problem{Msg: s}, "", false
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	p = Problem{Line: line, Msg: msg}
	if u := unknownRE.FindStringSubmatch(msg); u != nil {
		p.Path = x.keys[keyPos{line, u[1]}]
		p.Msg = unknownFieldMsg(u[1], u[2])
		return p, "", false // the rest of the mapping still decoded
	}
	if d := dupKeyRE.FindStringSubmatch(msg); d != nil {
		p.Path = x.keys[keyPos{line, d[1]}]
		first, _ := strconv.Atoi(d[2])
		p.Msg = fmt.Sprintf("duplicate key %q (first defined on line %d)", d[1], x.lm.orig(first))
		// yaml.v3 skips a mapping with duplicate keys entirely.
		if p.Path != "" {
			return p, parentPath(p.Path), true
		}
		return p, "", false
	}
	if d := dupFieldRE.FindStringSubmatch(msg); d != nil {
		p.Path = x.keys[keyPos{line, d[1]}]
		p.Msg = fmt.Sprintf("duplicate key %q", d[1])
		return p, "", false
	}
	if c := cannotRE.FindStringSubmatch(msg); c != nil {
		tag, value, into := c[1], c[2], c[3]
		p.Msg = fmt.Sprintf("expected %s, got %s", describeGoType(into), describeValue(tag, value))
		if n := x.findNode(line, func(path string, n *yaml.Node) bool {
			if n.ShortTag() != tag && n.Tag != tag {
				return false
			}
			if tag != "!!map" && tag != "!!seq" {
				if len(value) == 10 && strings.HasSuffix(value, "...") {
					if !strings.HasPrefix(n.Value, value[:7]) {
						return false
					}
				} else if n.Value != value {
					return false
				}
			}
			t := goTypeAt(path)
			return t != nil && t.String() == into
		}); n != nil {
			p.Path = n.path
		}
	} else {
		// An error of an UnmarshalYAML method: Duration's or Size's, which
		// quote the value when it is a scalar.
		unit := func(path string) bool {
			t := goTypeAt(path)
			return t == reflect.TypeFor[Duration]() || t == reflect.TypeFor[Size]()
		}
		n := x.findNode(line, func(path string, n *yaml.Node) bool {
			return unit(path) && n.Kind == yaml.ScalarNode && strings.Contains(msg, strconv.Quote(n.Value))
		})
		if n == nil {
			n = x.findNode(line, func(path string, _ *yaml.Node) bool { return unit(path) })
		}
		if n != nil {
			p.Path = n.path
		}
	}
	return p, p.Path, p.Path != ""
}

// findNode returns the first node indexed on line that satisfies f, in
// walk order (outer nodes first).
func (x *nodeIndex) findNode(line int, f func(path string, n *yaml.Node) bool) *indexedNode {
	for i, n := range x.byLine[line] {
		if f(n.path, n.node) {
			return &x.byLine[line][i]
		}
	}
	return nil
}

// parentPath returns the path of the mapping or list that holds path.
func parentPath(path string) string {
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '.' {
			return path[:i]
		}
		if path[i] == '[' {
			return path[:i]
		}
	}
	return ""
}

func describeGoType(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case strings.HasPrefix(t, "config.Duration"):
		return "a duration such as \"2s\""
	case strings.HasPrefix(t, "config.Size"):
		return "a size such as \"64MiB\""
	case strings.HasPrefix(t, "config."):
		return "a mapping"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}

func describeValue(tag, value string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	}
	return strconv.Quote(value)
}

// unknownFieldMsg explains an unknown field of the Go type typ (such as
// "config.Node"), suggesting the closest known field.
func unknownFieldMsg(field, typ string) string {
	msg := fmt.Sprintf("unknown field %q", field)
	known := yamlFields(typ)
	if len(known) == 0 {
		return msg
	}
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(field), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return msg + fmt.Sprintf("; did you mean %q?", best)
	}
	return msg + " (known fields: " + strings.Join(known, ", ") + ")"
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlFields returns the YAML field names of the configuration type named
// typ (as reflect prints it, e.g. "config.Node"), in declaration order.
func yamlFields(typ string) []string {
	return configFields()[typ]
}

var configFields = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		if _, ok := m[t.String()]; ok {
			return
		}
		var names []string
		m[t.String()] = names
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			names = append(names, name)
			visit(f.Type)
		}
		m[t.String()] = names
	}
	visit(reflect.TypeFor[Config]())
	return m
})

// goTypeAt returns the Go type that decodes the value at path, with
// pointers removed, or nil if path names no field of Config.
func goTypeAt(path string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for i := 0; i < len(path); {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		var key string
		index := false
		switch {
		case path[i] == '[' && i+1 < len(path) && path[i+1] == '"':
			q, err := strconv.QuotedPrefix(path[i+1:])
			if err != nil || i+1+len(q) >= len(path) || path[i+1+len(q)] != ']' {
				return nil
			}
			key, _ = strconv.Unquote(q)
			i += len(q) + 2
		case path[i] == '[':
			end := strings.IndexByte(path[i:], ']')
			if end < 0 {
				return nil
			}
			index = true
			i += end + 1
		default:
			if path[i] == '.' {
				i++
			}
			end := strings.IndexAny(path[i:], ".[")
			if end < 0 {
				end = len(path) - i
			}
			key = path[i : i+end]
			i += end
		}
		switch {
		case index && t.Kind() == reflect.Slice:
			t = t.Elem()
		case !index && t.Kind() == reflect.Map:
			t = t.Elem()
		case !index && t.Kind() == reflect.Struct:
			f, ok := yamlField(t, key)
			if !ok {
				return nil
			}
			t = f
		default:
			return nil
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// yamlField returns the type of the field of struct t with YAML name key.
func yamlField(t reflect.Type, key string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key && name != "-" && f.IsExported() {
			return f.Type, true
		}
	}
	return nil, false
}
