package config

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"
)

// maxRangeNumbers bounds what one range in a template expands to (every port there is).
const maxRangeNumbers = 65536

// templateFuncs are the functions frp's config templates have: parseNumberRange "6000-6006,7000"
// is [6000 ... 6006 7000]; parseNumberRangePair "6000-6002" "7000-7002" pairs two ranges of one
// length ({First 6000 Second 7000}, ...), for many proxies written once:
//
//	{{- range $_, $v := parseNumberRangePair "6000-6006" "7000-7006" }}
//	[[proxies]]
//	name = "tcp-{{ $v.First }}"
//	localPort = {{ $v.First }}
//	remotePort = {{ $v.Second }}
//	{{- end }}
var templateFuncs = template.FuncMap{
	"parseNumberRange":     parseNumberRange,
	"parseNumberRangePair": parseNumberRangePair,
}

// NumberPair is one element of parseNumberRangePair.
type NumberPair struct {
	First, Second int64
}

func parseNumberRangePair(first, second string) ([]NumberPair, error) {
	a, err := parseNumberRange(first)
	if err != nil {
		return nil, err
	}
	b, err := parseNumberRange(second)
	if err != nil {
		return nil, err
	}
	if len(a) != len(b) {
		return nil, fmt.Errorf("parseNumberRangePair: %q has %d numbers, %q %d: they must pair up", first, len(a), second, len(b))
	}
	out := make([]NumberPair, len(a))
	for i := range a {
		out[i] = NumberPair{a[i], b[i]}
	}
	return out, nil
}

// parseNumberRange reads "1000-2000,2001,3000-3005".
func parseNumberRange(s string) ([]int64, error) {
	var out []int64
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		from, err := strconv.ParseInt(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parseNumberRange %q: %q is not a number", s, strings.TrimSpace(lo))
		}
		to := from
		if isRange {
			if to, err = strconv.ParseInt(strings.TrimSpace(hi), 10, 64); err != nil {
				return nil, fmt.Errorf("parseNumberRange %q: %q is not a number", s, strings.TrimSpace(hi))
			}
		}
		if to < from {
			return nil, fmt.Errorf("parseNumberRange %q: %d-%d goes down", s, from, to)
		}
		if to-from >= maxRangeNumbers || len(out)+int(to-from) >= maxRangeNumbers {
			return nil, fmt.Errorf("parseNumberRange %q: more than %d numbers", s, maxRangeNumbers)
		}
		for n := from; n <= to; n++ {
			out = append(out, n)
		}
	}
	return out, nil
}

// templateError turns a text/template error ("template: NAME:LINE:COL: msg") into an Error
// with its position.
func templateError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	e := &Error{File: name, Msg: "template: " + msg}
	if rest, ok := strings.CutPrefix(msg, name+":"); ok {
		fields := strings.SplitN(rest, ":", 3)
		if len(fields) == 3 {
			if line, err := strconv.Atoi(fields[0]); err == nil {
				e.Line = line
				if col, err := strconv.Atoi(fields[1]); err == nil {
					e.Column = col
					e.Msg = "template:" + fields[2]
				} else {
					e.Msg = "template: " + strings.TrimSpace(fields[1]+":"+fields[2])
				}
			}
		} else if len(fields) == 2 {
			if line, err := strconv.Atoi(fields[0]); err == nil {
				e.Line, e.Column, e.Msg = line, 1, "template:"+fields[1]
			}
		}
	}
	if strings.Contains(e.Msg, "map has no entry for key") {
		e.Msg += " (the environment variable is not set)"
	}
	return e
}
