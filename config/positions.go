package config

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions maps every key path of a document ("auth.token", "proxies[0].localPort",
// "allowPorts[1].start") to where it is written, so that validation errors, which are found on
// the decoded structs, can still name a line and a column.
type positions map[string][2]int

// indexPositions walks the document's expressions. It returns the parser's error, if any, so
// that a syntax error is reported once, with its own position.
func indexPositions(data []byte) (positions, error) {
	pos := positions{}
	var p unstable.Parser
	p.Reset(data)
	lines := newLineIndex(data)
	prefix := ""
	arrayCounts := map[string]int{}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			prefix = inLastElement(keyPath(e.Key()), arrayCounts)
			pos.set(lines, prefix, firstKey(e))
		case unstable.ArrayTable:
			base := keyPath(e.Key())
			idx := arrayCounts[base]
			arrayCounts[base] = idx + 1
			prefix = base + "[" + strconv.Itoa(idx) + "]"
			pos.set(lines, prefix, firstKey(e))
		case unstable.KeyValue:
			pos.keyValue(lines, prefix, e)
		}
	}
	return pos, p.Error()
}

func (pos positions) keyValue(p *lineIndex, prefix string, kv *unstable.Node) {
	it := kv.Key()
	path := prefix
	var first *unstable.Node
	for it.Next() {
		n := it.Node()
		if first == nil {
			first = n
		}
		path = join(path, string(n.Data))
		// Dotted keys (auth.token = ...) also define their parents.
		if _, ok := pos[path]; !ok {
			pos.set(p, path, n)
		}
	}
	if first != nil {
		pos.set(p, path, first)
	}
	pos.value(p, path, kv.Value())
}

func (pos positions) value(p *lineIndex, path string, v *unstable.Node) {
	if v == nil {
		return
	}
	switch v.Kind {
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			child := it.Node()
			elem := path + "[" + strconv.Itoa(i) + "]"
			pos.set(p, elem, child)
			pos.value(p, elem, child)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if child := it.Node(); child.Kind == unstable.KeyValue {
				pos.keyValue(p, path, child)
			}
		}
	}
}

func (pos positions) set(p *lineIndex, path string, n *unstable.Node) {
	r := n.Raw
	if r.Length == 0 && r.Offset == 0 {
		if _, ok := pos[path]; !ok {
			pos[path] = [2]int{0, 0}
		}
		return
	}
	line, col := p.at(int(r.Offset))
	pos[path] = [2]int{line, col}
}

// lineIndex finds the line and column of an offset in a document, as go-toml's Parser.Shape
// does, by a binary search of its newlines: Shape counts them from the start at every call,
// which made a document of a few thousand keys (an INI [range:] section, a template's loop)
// take minutes to index (42 s for 6000 proxies).
type lineIndex struct{ newlines []int }

func newLineIndex(data []byte) *lineIndex {
	var nl []int
	for i, b := range data {
		if b == '\n' {
			nl = append(nl, i)
		}
	}
	return &lineIndex{newlines: nl}
}

// at returns the 1-based line and byte column of offset.
func (x *lineIndex) at(offset int) (line, col int) {
	before := sort.SearchInts(x.newlines, offset) // newlines before offset
	last := -1
	if before > 0 {
		last = x.newlines[before-1]
	}
	return before + 1, offset - last
}

// find returns the position of key, or of its closest written ancestor, or 0,0.
func (pos positions) find(key string) (line, col int) {
	for k := key; k != ""; k = parent(k) {
		if lc, ok := pos[k]; ok && lc[0] > 0 {
			return lc[0], lc[1]
		}
	}
	return 0, 0
}

// has reports whether key is written in the document.
func (pos positions) has(key string) bool {
	_, ok := pos[key]
	return ok
}

// firstKey returns the first key node of a table header (the header node itself has no range).
func firstKey(e *unstable.Node) *unstable.Node {
	it := e.Key()
	if it.Next() {
		return it.Node()
	}
	return e
}

// inLastElement puts a table under the last element of the array of tables it belongs to, as
// TOML does: [proxies.plugin] after the second [[proxies]] is "proxies[1].plugin".
func inLastElement(path string, arrayCounts map[string]int) string {
	for i := len(path); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		if n := arrayCounts[path[:i]]; n > 0 && i < len(path) {
			return path[:i] + "[" + strconv.Itoa(n-1) + "]" + path[i:]
		}
	}
	return path
}

func keyPath(it unstable.Iterator) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// parent strips the last element of a key path: "a.b[2].c" → "a.b[2]" → "a.b" → "a" → "".
func parent(k string) string {
	if strings.HasSuffix(k, "]") {
		if i := strings.LastIndexByte(k, '['); i >= 0 {
			return k[:i]
		}
	}
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[:i]
	}
	return ""
}

// indexed returns the path with array indexes ("proxies[1].localPort") of the key written on
// line as key ("proxies.localPort", as the decoder names it), or key when none matches.
func (pos positions) indexed(key string, line int) string {
	for path, at := range pos {
		if at[0] == line && stripIndexes(path) == key {
			return path
		}
	}
	return key
}

func stripIndexes(path string) string {
	var b strings.Builder
	depth := 0
	for _, r := range path {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}
