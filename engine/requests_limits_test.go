package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The whole-file limits need files too big for a testscript fixture
// (testdata/script/request_validation.txtar has the other rules).

func TestSSHKeyFileSizeLimit(t *testing.T) {
	t.Parallel()
	// Comment lines only: the size alone is refused, before any line is read.
	line := "# " + strings.Repeat("x", 97) + "\n"
	for _, tc := range []struct {
		name, content string
		tooLarge      bool
	}{
		{"65600 bytes are refused", strings.Repeat(line, 656), true},
		{"exactly 64 KiB is fine", strings.Repeat(line, 655) + "#" + strings.Repeat("x", 64<<10-65500-2) + "\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "keys.pub")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			keys, problems := parseSSHKeyFile(path)
			require.Empty(t, keys)
			if !tc.tooLarge {
				require.Empty(t, problems)
				return
			}
			require.Len(t, problems, 1)
			require.Equal(t, "--ssh-key-file "+path+": the file is too large: more than 64 KiB; at most 16 keys of at most 8 KiB each, 64 KiB in all", problems[0].Error())
			require.Equal(t, "--ssh-key-file", problems[0].Field)
		})
	}
}

func TestPasswordFileLimits(t *testing.T) {
	t.Parallel()
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
		{"not-a-real-secret\n" + strings.Repeat("x", 64<<10), "", "the file is too large: more than 64 KiB"},
	} {
		t.Run(tc.err, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "pw")
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			pw, err := ReadPasswordFile(path)
			require.Equal(t, tc.pw, pw)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.err)
			require.NotContains(t, err.Error(), "secret", "the error shows the password")
		})
	}
}
