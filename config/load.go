package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// LoadServer reads, decodes and validates a server config file.
func LoadServer(path string) (*Server, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ParseServer(path, data)
}

// LoadClient reads, decodes and validates a client config file.
func LoadClient(path string) (*Client, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ParseClient(path, data)
}

// ParseServer decodes and validates a server config; name is used in error messages. It returns
// warnings for frp keys that xp2p accepts but ignores.
func ParseServer(name string, data []byte) (*Server, []string, error) {
	return parse[Server](name, data)
}

// ParseClient decodes and validates a client config; name is used in error messages, and its
// directory is where the config's includes are looked for.
func ParseClient(name string, data []byte) (*Client, []string, error) {
	c := new(Client)
	pos, warnings, unknown, err := decode(name, data, c)
	if err != nil {
		return nil, nil, err
	}
	files := []string{name}
	l := &errorList{file: name, pos: pos}
	for i, pattern := range c.Includes {
		key := "includes[" + strconv.Itoa(i) + "]"
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(name), pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			l.at(key, "%q is not a valid pattern: %v", c.Includes[i], err)
			continue
		}
		if len(matches) == 0 {
			l.at(key, "%q matches no file", pattern)
		}
		for _, file := range matches {
			if file == name || slices.Contains(files, file) {
				continue // the main file, or a file two patterns match: once
			}
			inc, err := readInclude(file)
			if err != nil {
				l.at(key, "%v", err)
				continue
			}
			doc := new(includeDoc)
			ipos, iwarn, iunknown, err := decode(file, inc, doc)
			if err != nil {
				return nil, nil, err
			}
			files = append(files, file)
			warnings = append(warnings, iwarn...)
			unknown = append(unknown, iunknown...)
			c.included = append(c.included, includedFile{file: file, pos: ipos, proxies: len(doc.Proxies), visitors: len(doc.Visitors)})
			c.Proxies = append(c.Proxies, doc.Proxies...)
			c.Visitors = append(c.Visitors, doc.Visitors...)
		}
	}
	validation := c.complete(name, pos)
	if len(l.errs) > 0 {
		var ve Errors
		errors.As(validation, &ve)
		validation = append(l.errs, ve...)
	}
	if err := mergeFiles(files, unknown, validation); err != nil {
		return nil, nil, err
	}
	return c, warnings, nil
}

// maxInclude bounds an included file: a file of proxies and visitors, not a disk image.
const maxInclude = 1 << 20

// readInclude reads a file that includes matched: a regular file (not a device or a pipe,
// which could block or never end) of at most maxInclude bytes.
func readInclude(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", file)
	}
	if fi.Size() > maxInclude {
		return nil, fmt.Errorf("%s is larger than %d bytes", file, maxInclude)
	}
	return io.ReadAll(io.LimitReader(f, maxInclude+1))
}

// completer is a config that applies its defaults and validates itself.
type completer interface {
	complete(file string, pos positions) error
}

func parse[T any, PT interface {
	*T
	completer
}](name string, data []byte) (*T, []string, error) {
	c := PT(new(T))
	pos, warnings, unknown, err := decode(name, data, c)
	if err != nil {
		return nil, nil, err
	}
	if err := merge(unknown, c.complete(name, pos)); err != nil {
		return nil, nil, err
	}
	return (*T)(c), warnings, nil
}

// maxReported bounds the errors one file reports before decoding gives up on it.
const maxReported = 100

// decode renders environment templates, checks syntax, decodes strictly into v and lists
// ignored frp keys. Mistakes that leave the rest of the file readable do not stop decoding:
// unknown keys, values of the wrong type (the key is set aside and decoding goes on) and "//"
// comments (blanked, and the file parsed again) come back in found, to report together with
// the validation errors, so that one run shows every problem. Another syntax error stops at
// once: what follows it cannot be read.
func decode(name string, data []byte, v any) (pos positions, warnings []string, found Errors, err error) {
	data, err = renderTemplate(name, data)
	if err != nil {
		return nil, nil, nil, err
	}
	format := detectFormat(name, data)
	if format == formatTOML {
		return decodeTOML(name, data, v, nil)
	}
	var src positions
	switch format {
	case formatINI:
		data, src, err = fromINI(name, data)
	default:
		data, src, err = toTOML(name, data, format)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return decodeTOML(name, data, v, src)
}

// decodeTOML decodes a TOML document; src (if set) is where its keys are written in the file
// it was converted from, which errors and warnings then name.
func decodeTOML(name string, data []byte, v any, src positions) (pos positions, warnings []string, found Errors, err error) {
	defer func() {
		if src == nil {
			return
		}
		generated, _ := indexPositions(data)
		var es Errors
		errors.As(err, &es)
		for _, e := range append(es, found...) {
			// go-toml names array elements without their index; the line in the generated
			// TOML tells which element it is.
			if e.Line > 0 {
				e.Key = generated.indexed(e.Key, e.Line)
			}
			e.Line, e.Column = src.find(e.Key)
		}
		if pos != nil {
			pos = src
			warnings = ignoredKeys(name, pos, reflect.TypeOf(v).Elem())
		}
	}()
	for {
		var perr error
		if pos, perr = indexPositions(data); perr == nil {
			break
		}
		e, blanked := syntaxError(name, data, perr)
		found = append(found, e)
		if blanked == nil || len(found) >= maxReported {
			return nil, nil, nil, found
		}
		data = blanked
	}
	t := reflect.TypeOf(v).Elem()
	for {
		fresh := reflect.New(t)
		dec := toml.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err := dec.Decode(fresh.Interface())
		var sm *toml.StrictMissingError
		if err == nil || errors.As(err, &sm) {
			reflect.ValueOf(v).Elem().Set(fresh.Elem())
			if sm != nil {
				found = append(found, unknownKeys(name, t, sm)...)
			}
			break
		}
		e, line := decodeError(name, data, err)
		e.Key = pos.indexed(e.Key, e.Line)
		found = append(found, e)
		blanked := blankLine(data, line)
		if blanked == nil || len(found) >= maxReported {
			return nil, nil, nil, found
		}
		if _, perr := indexPositions(blanked); perr != nil {
			// The value went on past its line (a multi-line array): what follows cannot be
			// told apart from the mistake, so report only what is sure.
			return nil, nil, nil, found
		}
		data = blanked
	}
	return pos, ignoredKeys(name, pos, t), found, nil
}

// blankLine returns a copy of data with line (1-based) replaced by spaces, or nil when there is
// no such line.
func blankLine(data []byte, line int) []byte {
	if line < 1 {
		return nil
	}
	out := bytes.Clone(data)
	start := 0
	for i := 1; i < line; i++ {
		nl := bytes.IndexByte(out[start:], '\n')
		if nl < 0 {
			return nil
		}
		start += nl + 1
	}
	end := bytes.IndexByte(out[start:], '\n')
	if end < 0 {
		end = len(out) - start
	}
	for i := start; i < start+end; i++ {
		out[i] = ' '
	}
	return out
}

// merge joins unknown-key errors and validation errors of one file, in file order.
func merge(unknown Errors, validation error) error {
	return mergeFiles(nil, unknown, validation)
}

// mergeFiles joins unknown-key errors and validation errors, in the order of files (the
// main file first), then in file order.
func mergeFiles(files []string, unknown Errors, validation error) error {
	all := unknown
	var ve Errors
	if errors.As(validation, &ve) {
		for _, e := range ve {
			// A key whose value had the wrong type was set aside: "required" or a default
			// there would only repeat the first error.
			if !slices.ContainsFunc(unknown, func(u *Error) bool { return u.File == e.File && u.Key != "" && u.Key == e.Key }) {
				all = append(all, e)
			}
		}
	} else if validation != nil {
		return validation
	}
	if len(all) == 0 {
		return nil
	}
	slices.SortStableFunc(all, func(a, b *Error) int {
		if fa, fb := slices.Index(files, a.File), slices.Index(files, b.File); fa != fb {
			return cmp.Compare(fa, fb)
		}
		if a.Line != b.Line {
			return cmp.Compare(a.Line, b.Line)
		}
		return cmp.Compare(a.Column, b.Column)
	})
	return all
}

// Values is what templates in a config can use: {{ .Envs.NAME }}, as in frp.
type Values struct {
	Envs map[string]string
}

func renderTemplate(name string, data []byte) ([]byte, error) {
	if !bytes.Contains(data, []byte("{{")) {
		return data, nil
	}
	envs := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envs[k] = v
		}
	}
	tmpl, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(string(data))
	if err != nil {
		return nil, templateError(name, err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, Values{Envs: envs}); err != nil {
		return nil, templateError(name, err)
	}
	return out.Bytes(), nil
}

// syntaxError locates a parser error. For a "//" comment (the most common mistake in configs
// copied from blog posts) it also returns the document with that comment blanked, so that the
// rest of the file can be checked too; nil otherwise.
func syntaxError(name string, data []byte, err error) (e *Error, blanked []byte) {
	var pe *unstable.ParserError
	if !errors.As(err, &pe) {
		return &Error{File: name, Msg: err.Error()}, nil
	}
	line, col := 0, 0
	if len(pe.Highlight) > 0 {
		off := offsetIn(data, pe.Highlight)
		if off >= 0 {
			line, col = lineCol(data, off)
		}
	}
	msg := "syntax error: " + pe.Message
	if hint := commentHint(data, line, col); hint != "" {
		msg += "; " + hint
		blanked = blankComment(data, line, col)
	}
	return &Error{File: name, Line: line, Column: col, Msg: msg}, blanked
}

// blankComment returns a copy of data with the "//" comment on line (from col on) blanked.
func blankComment(data []byte, line, col int) []byte {
	start := 0
	for i := 1; i < line; i++ {
		start += bytes.IndexByte(data[start:], '\n') + 1
	}
	end := bytes.IndexByte(data[start:], '\n')
	if end < 0 {
		end = len(data) - start
	}
	l := data[start : start+end]
	from := max(col-1, 0)
	at := bytes.Index(l[from:], []byte("//"))
	if at < 0 {
		return nil
	}
	out := bytes.Clone(data)
	for i := start + from + at; i < start+end; i++ {
		out[i] = ' '
	}
	return out
}

// commentHint recognises the most common mistake in configs copied from blog posts: a "//"
// comment after a value.
func commentHint(data []byte, line, col int) string {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	l := lines[line-1]
	from := max(col-1, 0)
	if from <= len(l) && bytes.Contains(l[from:], []byte("//")) {
		return `TOML comments start with "#", not "//"`
	}
	return ""
}

func unknownKeys(name string, t reflect.Type, sm *toml.StrictMissingError) Errors {
	var es Errors
	for i := range sm.Errors {
		de := &sm.Errors[i]
		line, col := de.Position()
		msg := "unknown key"
		if s := suggest(t, de.Key()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		es = append(es, &Error{File: name, Line: line, Column: col, Key: strings.Join(de.Key(), "."), Msg: msg})
	}
	return es
}

// typeMismatch matches go-toml's wording, which names Go types; users need TOML words.
var typeMismatch = regexp.MustCompile(`cannot decode TOML (\w+) into (?:struct field \S+ of type|a Go value of type) (\S+)`)

// decodeError locates a decoding error (a value of the wrong type) and says it in TOML words;
// line is where it is.
func decodeError(name string, data []byte, err error) (e *Error, line int) {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return &Error{File: name, Msg: err.Error()}, 0
	}
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if m := typeMismatch.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("expected %s, got a %s", tomlKind(m[2]), m[1])
	}
	if hint := commentHint(data, line, col); hint != "" {
		msg += "; " + hint
	}
	return &Error{File: name, Line: line, Column: col, Key: strings.Join(de.Key(), "."), Msg: msg}, line
}

// tomlKind names a Go type as the TOML value a user should write.
func tomlKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "an integer"
	case goType == "string":
		return "a string"
	case goType == "bool", goType == "*bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map"), strings.Contains(goType, "."):
		return "a table"
	}
	return goType
}

// suggest proposes the known key closest to an unknown one: same letters ignoring case and
// underscores (frp's old INI names such as local_ip), or at most two edits away.
func suggest(t reflect.Type, key []string) string {
	if len(key) == 0 {
		return ""
	}
	st := typeAt(t, key[:len(key)-1])
	if st == nil {
		return ""
	}
	unknown := key[len(key)-1]
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	best, bestDist := "", 3
	for i := 0; i < st.NumField(); i++ {
		name := tomlName(st.Field(i))
		if name == "" {
			continue
		}
		if norm(name) == norm(unknown) {
			return name
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(unknown)); d < bestDist {
			best, bestDist = name, d
		}
	}
	return best
}

// typeAt walks struct fields by TOML key names, through slices, to the struct at path.
func typeAt(t reflect.Type, path []string) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if len(path) == 0 {
		if t.Kind() == reflect.Struct {
			return t
		}
		return nil
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		if tomlName(t.Field(i)) == path[0] {
			return typeAt(t.Field(i).Type, path[1:])
		}
	}
	return nil
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

func editDistance(a, b string) int {
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

// ignoredKeys lists the frp keys present in the document that xp2p does not implement.
func ignoredKeys(name string, pos positions, t reflect.Type) []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := join(prefix, tomlName(f))
			ft := f.Type
			if f.Tag.Get("xp2p") == "ignored" {
				if pos.has(key) {
					line, col := pos.find(key)
					why := "an frp option that xp2p does not implement"
					if w := f.Tag.Get("why"); w != "" {
						why = "not needed: " + w
					}
					out = append(out, fmt.Sprintf("%s:%d:%d: %s is %s; ignored", name, line, col, key, why))
				}
				continue
			}
			switch {
			case ft.Kind() == reflect.Struct:
				walk(ft, key)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				for j := 0; pos.has(key + "[" + strconv.Itoa(j) + "]"); j++ {
					walk(ft.Elem(), key+"["+strconv.Itoa(j)+"]")
				}
			}
		}
	}
	walk(t, "")
	return out
}

func offsetIn(data, sub []byte) int {
	if len(sub) == 0 || len(data) == 0 {
		return -1
	}
	start := reflect.ValueOf(data).Pointer()
	p := reflect.ValueOf(sub).Pointer()
	if p < start || p > start+uintptr(len(data)) {
		return -1
	}
	return int(p - start)
}

func lineCol(data []byte, off int) (int, int) {
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// Kind tells a client config from a server config by its keys: a client config names its
// server (serverAddr) or has proxies or visitors. It returns "client" or "server".
func Kind(data []byte) string {
	if IsLegacyINI(data) {
		if bytes.Contains(data, []byte("server_addr")) || bytes.Contains(data, []byte("\ntype")) {
			return "client"
		}
		return "server"
	}
	var probe struct {
		ServerAddr string `toml:"serverAddr"`
		Proxies    []any  `toml:"proxies"`
		Visitors   []any  `toml:"visitors"`
	}
	if err := toml.Unmarshal(data, &probe); err == nil && (probe.ServerAddr != "" || len(probe.Proxies) > 0 || len(probe.Visitors) > 0) {
		return "client"
	}
	if bytes.Contains(data, []byte("serverAddr")) || bytes.Contains(data, []byte("[[proxies]]")) || bytes.Contains(data, []byte("[[visitors]]")) {
		return "client"
	}
	return "server"
}
