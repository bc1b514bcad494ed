package main

import (
	gojson "github.com/goccy/go-json"
)

// appendVMJSON appends j as json.MarshalIndent(j, prefix, "  ") writes it.
// vm list --json writes 10,000 of them: github.com/goccy/go-json encodes a
// vmJSON about 3× faster than encoding/json (its encoder is compiled once
// per type instead of walking the struct by reflection for every value).
// vm show and vm create print through it too, so the golden files of both
// shapes check it, and TestAppendVMJSON compares it with encoding/json
// byte for byte.
func appendVMJSON(b []byte, j *vmJSON, prefix string) ([]byte, error) {
	out, err := gojson.MarshalIndent(j, prefix, "  ")
	if err != nil {
		return b, err
	}
	return append(b, out...), nil
}
