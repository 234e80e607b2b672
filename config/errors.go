package config

import (
	"fmt"
	"strings"
)

// Error is one problem in a config file, located by line and column (1-based; 0 when the
// problem has no place, such as a missing key) and by key path (e.g. "proxies[1].localPort").
type Error struct {
	File   string
	Line   int
	Column int
	Key    string
	Msg    string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// errorList collects errors for one file, locating keys through the file's position index.
type errorList struct {
	file string
	pos  positions
	errs Errors
	// label prefixes the keys this list names to others ("conf.d/web.toml: " for an included
	// file), so that a duplicate across files says where the first one is.
	label string
}

// at records a problem with the value of key (located at the key, or at the nearest enclosing
// table that the file has when the key itself is absent).
func (l *errorList) at(key, format string, args ...any) {
	line, col := l.pos.find(key)
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Column: col, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	return l.errs
}
