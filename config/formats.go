package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// Config formats, chosen by the file's extension as frp chooses: .yaml and .yml are YAML, .json
// is JSON, .ini is frp's legacy INI, anything else TOML. A YAML or JSON document is turned into
// the same TOML document it says (the keys and types do not change) and decoded as TOML, with
// every error put back at the line and column of the original.
const (
	formatTOML = "toml"
	formatYAML = "yaml"
	formatJSON = "json"
	formatINI  = "ini"
)

func formatOf(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return formatYAML
	case ".json":
		return formatJSON
	case ".ini":
		return formatINI
	}
	return formatTOML
}

// detectFormat is the format of a config: by its extension, except that frp's legacy INI is
// recognised by its [common] section whatever the file is called (as frp does).
func detectFormat(name string, data []byte) string {
	format := formatOf(name)
	if format == formatTOML && IsLegacyINI(data) {
		return formatINI
	}
	return format
}

// toTOML converts a YAML or JSON document to TOML and returns where each key path is written in
// the original.
func toTOML(name string, data []byte, format string) ([]byte, positions, error) {
	pos := positions{}
	var doc map[string]any
	var err error
	switch format {
	case formatYAML:
		doc, err = fromYAML(name, data, pos)
	case formatJSON:
		doc, err = fromJSON(name, data, pos)
	default:
		return nil, nil, fmt.Errorf("%s: unknown format %q", name, format)
	}
	if err != nil {
		return nil, nil, err
	}
	return marshalTOML(name, doc, pos)
}

// marshalTOML writes a converted document as TOML, with the positions of its original.
func marshalTOML(name string, doc map[string]any, pos positions) ([]byte, positions, error) {
	out, err := toml.Marshal(doc)
	if err != nil {
		return nil, nil, &Error{File: name, Msg: err.Error()}
	}
	return out, pos, nil
}

// fromYAML reads a YAML document (go.yaml.in/yaml/v3, with anchors, aliases and merge keys;
// top-level keys that start with "." hold anchors only, as in frp).
func fromYAML(name string, data []byte, pos positions) (map[string]any, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if len(root.Content) == 0 {
		return map[string]any{}, nil
	}
	doc := root.Content[0]
	v, err := yamlValue(name, doc, "", pos, 0)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{File: name, Line: doc.Line, Column: doc.Column, Msg: "a config is a mapping of keys to values"}
	}
	for k := range m {
		if strings.HasPrefix(k, ".") {
			delete(m, k)
		}
	}
	return m, nil
}

// maxDepth bounds the nesting of a document (aliases can nest without end).
const maxDepth = 32

func yamlValue(name string, n *yaml.Node, path string, pos positions, depth int) (any, error) {
	if depth > maxDepth {
		return nil, &Error{File: name, Line: n.Line, Column: n.Column, Key: path, Msg: "nested too deep"}
	}
	switch n.Kind {
	case yaml.AliasNode:
		return yamlValue(name, n.Alias, path, pos, depth+1)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				// <<: *base merges the keys of base that are not set here.
				merged, err := yamlValue(name, v, path, pos, depth+1)
				if err != nil {
					return nil, err
				}
				for _, mm := range mergeList(merged) {
					for mk, mv := range mm {
						if _, set := m[mk]; !set {
							m[mk] = mv
						}
					}
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, &Error{File: name, Line: k.Line, Column: k.Column, Key: path, Msg: "a key must be a plain name"}
			}
			key := join(path, k.Value)
			pos[key] = [2]int{k.Line, k.Column}
			val, err := yamlValue(name, v, key, pos, depth+1)
			if err != nil {
				return nil, err
			}
			if val != nil {
				m[k.Value] = val
			}
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			key := path + "[" + strconv.Itoa(i) + "]"
			pos[key] = [2]int{c.Line, c.Column}
			val, err := yamlValue(name, c, key, pos, depth+1)
			if err != nil {
				return nil, err
			}
			if val == nil {
				return nil, &Error{File: name, Line: c.Line, Column: c.Column, Key: key, Msg: "an empty element"}
			}
			out = append(out, val)
		}
		return out, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, &Error{File: name, Line: n.Line, Column: n.Column, Key: path, Msg: err.Error()}
		}
		switch x := v.(type) {
		case int:
			return int64(x), nil
		case uint64:
			if x > math.MaxInt64 {
				return nil, &Error{File: name, Line: n.Line, Column: n.Column, Key: path, Msg: "number too large"}
			}
			return int64(x), nil
		}
		return v, nil // string, bool, float64, nil (an empty value: the key is left out)
	}
	return nil, &Error{File: name, Line: n.Line, Column: n.Column, Key: path, Msg: "unexpected YAML node"}
}

// mergeList is what a merge key brings: one mapping, or a list of them.
func mergeList(v any) []map[string]any {
	switch x := v.(type) {
	case map[string]any:
		return []map[string]any{x}
	case []any:
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// yamlError gives a YAML syntax error its line ("yaml: line 3: mapping values are not
// allowed in this context").
func yamlError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: name, Msg: "syntax error: " + msg}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ":"); ok {
			if line, err := strconv.Atoi(n); err == nil {
				e.Line, e.Column, e.Msg = line, 1, "syntax error:"+after
			}
		}
	}
	return Errors{e}
}

// fromJSON reads a JSON document with encoding/json's tokenizer, which says where each key is.
func fromJSON(name string, data []byte, pos positions) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	at := func(off int64) (int, int) {
		// A key's start is found back from its end by its quoted length, which an invalid
		// UTF-8 byte (quoted as three) makes longer than the key was written: never before 0.
		o := int(min(max(off, 0), int64(len(data))))
		for o < len(data) && strings.IndexByte(" \t\r\n,:", data[o]) >= 0 {
			o++ // InputOffset is where the last token ended
		}
		return lineCol(data, o)
	}
	fail := func(msg string) error {
		line, col := at(dec.InputOffset())
		return Errors{{File: name, Line: line, Column: col, Msg: msg}}
	}
	var value func(path string, depth int) (any, error)
	value = func(path string, depth int) (any, error) {
		if depth > maxDepth {
			return nil, fail("nested too deep")
		}
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(name, data, dec, err)
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				m := map[string]any{}
				for dec.More() {
					kt, err := dec.Token()
					if err != nil {
						return nil, jsonError(name, data, dec, err)
					}
					k, _ := kt.(string)
					key := join(path, k)
					// InputOffset is just past the key; the key starts at its opening quote.
					line, col := at(dec.InputOffset() - int64(len(strconv.Quote(k))))
					if _, dup := m[k]; dup {
						return nil, Errors{{File: name, Line: line, Column: col, Key: key, Msg: "duplicate key"}}
					}
					pos[key] = [2]int{line, col}
					v, err := value(key, depth+1)
					if err != nil {
						return nil, err
					}
					if v != nil {
						m[k] = v
					}
				}
				dec.Token() // '}'
				return m, nil
			case '[':
				var out []any
				for i := 0; dec.More(); i++ {
					key := path + "[" + strconv.Itoa(i) + "]"
					line, col := at(dec.InputOffset())
					pos[key] = [2]int{line, col}
					v, err := value(key, depth+1)
					if err != nil {
						return nil, err
					}
					if v == nil {
						return nil, Errors{{File: name, Line: line, Column: col, Key: key, Msg: "null element"}}
					}
					out = append(out, v)
				}
				dec.Token() // ']'
				if out == nil {
					out = []any{}
				}
				return out, nil
			}
		case json.Number:
			if n, err := t.Int64(); err == nil {
				return n, nil
			}
			f, err := t.Float64()
			if err != nil {
				return nil, fail(fmt.Sprintf("%s is not a number", t))
			}
			return f, nil
		case string, bool:
			return t, nil
		case nil:
			return nil, nil
		}
		return nil, fail("unexpected JSON token")
	}
	v, err := value("", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail("syntax error: more after the document")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, Errors{{File: name, Line: 1, Column: 1, Msg: "a config is an object of keys to values"}}
	}
	return m, nil
}

func jsonError(name string, data []byte, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		off = int64(len(data))
		err = errors.New("unexpected end of the document")
	}
	line, col := lineCol(data, int(min(off, int64(len(data)))))
	return Errors{{File: name, Line: line, Column: col, Msg: "syntax error: " + err.Error()}}
}
