package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// checkFile reports what the YAML decoder would not report, or would report
// only one at a time: an empty file, every unknown key, integer keys whose
// value is not written as a plain whole number (1024.5, 1e3, 0x10, "2",
// many) or does not fit, and invalid durations. It walks the parsed file against the Config type, so every
// error has its own line and dotted key. Errors come in file order.
func (c *Config) checkFile(file *ast.File) error {
	if isEmpty(file) {
		return &Error{File: c.path, Msg: "the file is empty (no settings); docs/pvectl.example.yaml is an annotated example"}
	}
	w := &fileWalker{c: c, anchors: map[string]ast.Node{}}
	for _, doc := range file.Docs {
		for _, n := range ast.Filter(ast.AnchorType, doc.Body) {
			if a, ok := n.(*ast.AnchorNode); ok && a.Name != nil && a.Name.GetToken() != nil {
				w.anchors[a.Name.GetToken().Value] = a.Value
			}
		}
	}
	// Only the first document is decoded, so only it is checked.
	w.walk(file.Docs[0].Body, reflect.TypeFor[Config](), "", "", 0)
	slices.SortStableFunc(w.found, func(a, b posError) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	errs := make([]error, 0, len(w.found))
	seen := map[Error]bool{}
	for _, f := range w.found {
		if !seen[*f.err] {
			seen[*f.err] = true
			errs = append(errs, f.err)
		}
	}
	return errors.Join(errs...)
}

// isEmpty reports whether a file holds no YAML value at all: zero bytes, or
// only comments, whitespace and document markers.
func isEmpty(file *ast.File) bool {
	for _, doc := range file.Docs {
		switch doc.Body.(type) {
		case nil, *ast.CommentGroupNode:
		default:
			return false
		}
	}
	return true
}

type posError struct {
	line, col int
	err       *Error
}

type fileWalker struct {
	c       *Config
	anchors map[string]ast.Node
	found   []posError
}

// maxDepth bounds the walk (and alias resolution) for pathological files.
const maxDepth = 64

func (w *fileWalker) add(tk *token.Token, key, msg string) {
	e := posError{err: &Error{File: w.c.path, Key: key, Msg: msg}}
	if tk != nil && tk.Position != nil {
		e.line, e.col = tk.Position.Line, tk.Position.Column
		e.err.Line = e.line
	}
	w.found = append(w.found, e)
}

// walk checks node n, which is decoded into a value of type t at the dotted
// key path. valid is the `valid` struct tag of the field, if any. A node of
// the wrong shape for t is left alone: the decoder reports it.
func (w *fileWalker) walk(n ast.Node, t reflect.Type, path, valid string, depth int) {
	if n == nil || depth > maxDepth {
		return
	}
	switch v := n.(type) {
	case *ast.TagNode:
		w.walk(v.Value, t, path, valid, depth+1)
		return
	case *ast.AnchorNode:
		w.walk(v.Value, t, path, valid, depth+1)
		return
	case *ast.AliasNode:
		if v.Value != nil && v.Value.GetToken() != nil {
			w.walk(w.anchors[v.Value.GetToken().Value], t, path, valid, depth+1)
		}
		return
	case *ast.NullNode:
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if u, ok := reflect.New(t).Interface().(interface{ UnmarshalYAML(ast.Node) error }); ok {
		// Duration: its own unmarshaler says what is wrong.
		if err := u.UnmarshalYAML(n); err != nil {
			w.add(n.GetToken(), path, err.Error())
		}
		return
	}
	if decodesItself(t) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		w.mapping(n, path, depth, func(name string) (reflect.StructField, bool) {
			for i := range t.NumField() {
				f := t.Field(i)
				if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && tag == name && tag != "-" {
					return f, true
				}
			}
			return reflect.StructField{}, false
		})
	case reflect.Map:
		w.mapping(n, path, depth, func(string) (reflect.StructField, bool) {
			return reflect.StructField{Type: t.Elem()}, true
		})
	case reflect.Slice:
		if seq, ok := n.(*ast.SequenceNode); ok {
			for i, item := range seq.Values {
				w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), "", depth+1)
			}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.integer(n, path, valid, t.Bits())
	}
}

// mapping walks the entries of a mapping node; field resolves a key.
func (w *fileWalker) mapping(n ast.Node, path string, depth int, field func(name string) (reflect.StructField, bool)) {
	var entries []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		entries = v.Values
	case *ast.MappingValueNode:
		entries = []*ast.MappingValueNode{v}
	default:
		return
	}
	for _, mv := range entries {
		if mv == nil || mv.Key == nil {
			continue
		}
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			w.merge(mv.Value, path, depth+1, field)
			continue
		}
		tk := mv.Key.GetToken()
		if tk == nil {
			continue
		}
		name := tk.Value
		key := name
		if path != "" {
			key = path + "." + name
		}
		f, ok := field(name)
		if !ok {
			w.add(tk, key, fmt.Sprintf("unknown field %q (see docs/pvectl.example.yaml for valid keys)", name))
			continue
		}
		w.walk(mv.Value, f.Type, key, f.Tag.Get("valid"), depth+1)
	}
}

// merge walks the mappings a merge key (<<: *defaults) pulls in.
func (w *fileWalker) merge(n ast.Node, path string, depth int, field func(name string) (reflect.StructField, bool)) {
	if n == nil || depth > maxDepth {
		return
	}
	switch v := n.(type) {
	case *ast.AliasNode:
		if v.Value != nil && v.Value.GetToken() != nil {
			w.merge(w.anchors[v.Value.GetToken().Value], path, depth+1, field)
		}
	case *ast.AnchorNode:
		w.merge(v.Value, path, depth+1, field)
	case *ast.TagNode:
		w.merge(v.Value, path, depth+1, field)
	case *ast.SequenceNode:
		for _, item := range v.Values {
			w.merge(item, path, depth+1, field)
		}
	default:
		w.mapping(n, path, depth, field)
	}
}

// plainInt is how an integer key's value must be written: decimal digits,
// an optional sign, no leading zero (YAML 1.1 reads 010 as octal 8).
var plainInt = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)

// looksNumeric matches what YAML or the decoder would take for a number in
// another notation: fractions, exponents, 0x/0o/0b prefixes, underscores,
// leading zeros, .inf and .nan.
var looksNumeric = regexp.MustCompile(`^[-+]?([0-9][0-9_]*(\.[0-9_]*)?|\.[0-9][0-9_]*)([eE][-+]?[0-9]+)?$|^[-+]?0[xXoObB][0-9a-fA-F_]+$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$`)

// integer checks the value of an integer key.
func (w *fileWalker) integer(n ast.Node, path, valid string, bits int) {
	tk := n.GetToken()
	if tk == nil {
		return
	}
	text := tk.Value
	suffix := ""
	if valid != "" {
		suffix = "; valid: " + valid
	}
	switch n.(type) {
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
	case *ast.StringNode, *ast.BoolNode:
		if _, ok := n.(*ast.BoolNode); ok || !looksNumeric.MatchString(text) {
			w.add(tk, path, fmt.Sprintf("wrong type: want a whole number, got %q%s", shorten(text), suffix))
			return
		}
	default:
		return // a mapping or list: the decoder reports the wrong type
	}
	if tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType {
		// The decoder would convert "2" and truncate '1024.5'.
		w.add(tk, path, fmt.Sprintf("wrong type: want a whole number, got the string %q (remove the quotes)%s", shorten(text), suffix))
		return
	}
	if !plainInt.MatchString(text) {
		w.add(tk, path, fmt.Sprintf("want a whole number in plain decimal digits, got %s%s", shorten(text), suffix))
		return
	}
	if _, err := strconv.ParseInt(text, 10, bits); err != nil {
		w.add(tk, path, fmt.Sprintf("%s is out of range%s", shorten(text), suffix))
	}
}

// shorten keeps a value quoted in an error readable.
func shorten(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// decodesItself reports whether t has its own YAML unmarshaler (Duration):
// its values are checked by that unmarshaler, not by the walk.
func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(reflect.TypeFor[interface{ UnmarshalYAML(ast.Node) error }]()) ||
		p.Implements(reflect.TypeFor[interface{ UnmarshalYAML([]byte) error }]()) ||
		p.Implements(reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }]())
}
