package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pvectl/pvectl/engine"
)

// TestAppendVMJSON: the VM encoder (goccy/go-json) writes what encoding/json
// writes for the same vmJSON, byte for byte but for two escapes, at the indents vm show and vm
// list use: every field set (filled through reflection, so a field added to
// vmJSON and not to the encoder fails here), none set, and the strings and
// times encoding/json treats specially.
func TestAppendVMJSON(t *testing.T) {
	t.Parallel()
	zone := time.FixedZone("X", -(3*3600 + 30*60))
	at := time.Date(2026, 11, 25, 12, 10, 20, 123456789, zone)
	tricky := "<a href=\"x\">&amp;</a>\\ \n\t\r\b\f \x01 \x7f é \u2028\u2029 \xff end"
	full := func(s string, tm time.Time) vmJSON {
		var j vmJSON
		fillJSON(t, reflect.ValueOf(&j).Elem(), s, tm)
		return j
	}
	cases := []struct {
		name string
		vm   vmJSON
	}{
		{"zero", vmJSON{}},
		{"no ips", vmJSON{ServiceID: "svc-1", IPs: []string{}}},
		{"every field", full("v", at)},
		{"every field, tricky strings", full(tricky, at)},
		{"every field, UTC whole seconds", full("w", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
		{"stuck without task type", func() vmJSON {
			j := full("s", at)
			j.Stuck = &engine.Stuck{Class: engine.StuckStep, ForText: "2h", LimitText: "1h"}
			return j
		}()},
		{"one ip", vmJSON{IPs: []string{"10.0.0.1"}}},
		{"times", vmJSON{
			StateSince:  time.Date(2026, 3, 4, 5, 6, 7, 120_000_000, time.UTC),
			NextAttempt: func() *time.Time { t := time.Date(999, 1, 1, 0, 0, 0, 1, time.FixedZone("E", 5*3600+45*60)); return &t }(),
			CreatedAt:   time.Date(0, 1, 1, 0, 0, 0, 0, time.FixedZone("W", -59)),
			UpdatedAt:   time.UnixMilli(1764072620123).UTC(),
		}},
		{"odd zones", vmJSON{
			StateSince: time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("M", -90)),
			CreatedAt:  time.Date(2026, 6, 1, 0, 0, 0, 100, time.FixedZone("N", 23*3600+59*60+59)),
			UpdatedAt:  time.Date(2026, 6, 1, 0, 0, 0, 0, time.FixedZone("S", -(23*3600+59*60))),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, prefix := range []string{"", "  "} {
				want, err := json.MarshalIndent(c.vm, prefix, "  ")
				if err != nil {
					t.Fatal(err)
				}
				got, err := appendVMJSON(nil, &c.vm, prefix)
				if err != nil {
					t.Fatal(err)
				}
				// The one difference: goccy/go-json writes a backspace and
				// a form feed as \u0008 and \u000c, encoding/json as \b
				// and \f (the same string to every JSON reader).
				if strings.NewReplacer(`\u0008`, `\b`, `\u000c`, `\f`).Replace(string(got)) != string(want) {
					t.Errorf("prefix %q:\ngot:\n%s\nwant:\n%s", prefix, got, want)
				}
			}
		})
	}
}

// TestAppendVMJSONBadTime: a time encoding/json refuses is refused here
// too, instead of printing JSON it would not print.
func TestAppendVMJSONBadTime(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("Y", 24*3600)),
	} {
		j := vmJSON{CreatedAt: tm}
		_, wantErr := json.MarshalIndent(j, "", "  ")
		_, err := appendVMJSON(nil, &j, "")
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%v: error %v, encoding/json's %v", tm, err, wantErr)
		}
	}
}

// fillJSON sets every field under v to a value that is not its zero value:
// strings s plus the field's name, numbers and booleans non-zero, times at,
// pointers to filled values, slices of two.
func fillJSON(t *testing.T, v reflect.Value, s string, at time.Time) {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Time]() {
		v.Set(reflect.ValueOf(at))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(len(s)) + 7)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillJSON(t, v.Elem(), s, at)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fillJSON(t, v.Index(0), s+"0", at)
		fillJSON(t, v.Index(1), s+"1", at)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			fillJSON(t, v.Field(i), s+strings.ToLower(f.Name), at)
		}
	default:
		t.Fatalf("fillJSON: no rule for %s", v.Type())
	}
}
