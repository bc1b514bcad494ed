package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The whole-file limits need files too big for a testscript fixture
// (testdata/script/request_validation.txtar has the other rules).

func TestSSHKeyFileOver64KiB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.pub")
	// Comment lines only: the size alone is refused, before any line is read.
	line := "# " + strings.Repeat("x", 97) + "\n"
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 656)), 0o600); err != nil { // 65600 bytes
		t.Fatal(err)
	}
	keys, problems := parseSSHKeyFile(path)
	want := "--ssh-key-file " + path + ": the file is too large: more than 64 KiB; at most 16 keys of at most 8 KiB each, 64 KiB in all"
	if keys != "" || len(problems) != 1 || problems[0] != want {
		t.Fatalf("got %q, %q; want no keys and %q", keys, problems, want)
	}
	// Exactly 64 KiB is fine.
	if err := os.WriteFile(path, []byte(strings.Repeat(line, 655)+"#"+strings.Repeat("x", 64<<10-65500-2)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, problems := parseSSHKeyFile(path); keys != "" || problems != nil {
		t.Fatalf("64 KiB of comments: got %q, %q; want no keys, no problems", keys, problems)
	}
}

func TestPasswordFileOver64KiB(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(path, []byte("not-a-real-secret\n"+strings.Repeat("x", 64<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := readPasswordFile(path)
	if want := "the file is too large: more than 64 KiB"; pw != "" || err == nil || err.Error() != want {
		t.Fatalf("got %q, %v; want error %q", pw, err, want)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatal("the error shows the password")
	}
}

func TestPasswordFileLimits(t *testing.T) {
	for _, tc := range []struct{ content, pw, err string }{
		{"pw\n", "pw", ""},
		{"pw\r\n", "pw", ""},
		{"pw\r\r\nrest\x00", "pw", ""},
		{"pässwort mit leerzeichen", "pässwort mit leerzeichen", ""},
		{strings.Repeat("p", 256) + "\n", strings.Repeat("p", 256), ""},
		{strings.Repeat("p", 257), "", "the first line is 257 bytes; a password is 1 to 256 bytes"},
		{"", "", "the first line is empty"},
		{"\r\n", "", "the first line is empty"},
		{"pw\x7f", "", "the first line has control character U+007F at byte 3; a password must not contain control characters (the line ends at the first \\n)"},
		{"pw\u2028x", "", "the first line has control character U+2028 at byte 3; a password must not contain control characters (the line ends at the first \\n)"},
		{"pw\x00", "", "the first line has control character U+0000 at byte 3; a password must not contain control characters (the line ends at the first \\n)"},
	} {
		path := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		pw, err := readPasswordFile(path)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if pw != tc.pw || got != tc.err {
			t.Errorf("%q: got %q, %q; want %q, %q", tc.content, pw, got, tc.pw, tc.err)
		}
	}
}
