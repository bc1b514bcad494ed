package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Limits on what a create (and a reinstall) request accepts as request input
// (docs/cli.md, "vm create"). Everything here ends up in the store and, for
// SSH keys and the password, in PVE's cloud-init config, from which PVE writes
// the user-data YAML line by line without quoting: a control character there
// (a CR is a YAML line break) would inject YAML.
const (
	maxSSHKeys        = 16
	maxSSHKeyLine     = 8 << 10  // an RSA-16384 key line is about 2.8 KiB
	maxSSHKeyFile     = 64 << 10 // the whole file
	maxPasswordLen    = 256      // bytes; PVE documents no maximum for cipassword
	maxPasswordFile   = 64 << 10
	maxIdemKeyLen     = 128
	maxQuotedInputLen = 60 // longest input quoted back in an error message
)

// quoteInput quotes user input for an error message, shortened to
// maxQuotedInputLen bytes (and says how long it was) so that a huge or hostile
// value never floods the terminal; %q escapes control characters.
func quoteInput(s string) string {
	if len(s) <= maxQuotedInputLen {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuotedInputLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:cut], len(s))
}

// badChar returns the offset and rune of the first character of s that must
// not reach cloud-init: invalid UTF-8, a C0 or C1 control character or DEL,
// Unicode line or paragraph separators (YAML 1.1 line breaks), the BOM and
// non-characters (which YAML parsers refuse). ok is false if there is none.
func badChar(s string) (off int, r rune, ok bool) {
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return i, r, true
			}
		case unicode.IsControl(r), r == '\u2028', r == '\u2029', r == '\ufeff', r == '\ufffe', r == '\uffff':
			return i, r, true
		}
	}
	return 0, 0, false
}

// describeBadChar names the character badChar found.
func describeBadChar(off int, r rune) string {
	if r == utf8.RuneError {
		return fmt.Sprintf("invalid UTF-8 at byte %d", off+1)
	}
	return fmt.Sprintf("control character %U at byte %d", r, off+1)
}

// errTooLarge is readLimited's error for a file over the limit.
var errTooLarge = errors.New("the file is too large")

// readLimited reads at most max bytes of a file; a larger file is an error
// wrapping errTooLarge.
func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d KiB", errTooLarge, max>>10)
	}
	return b, nil
}

// parseSSHKeyFile reads and checks an --ssh-key-file (see parseSSHKeys);
// the problems name the flag and file.
func parseSSHKeyFile(path string) (string, []*ErrInvalid) {
	b, err := readLimited(path, maxSSHKeyFile)
	if err != nil {
		if !errors.Is(err, errTooLarge) {
			return "", []*ErrInvalid{keyProblem("--ssh-key-file: %v", err)}
		}
		return "", []*ErrInvalid{keyProblem("--ssh-key-file %s: %v; at most %d keys of at most %d KiB each, %d KiB in all",
			path, err, maxSSHKeys, maxSSHKeyLine>>10, maxSSHKeyFile>>10)}
	}
	return parseSSHKeys("--ssh-key-file "+path, b)
}

func keyProblem(format string, args ...any) *ErrInvalid {
	return &ErrInvalid{Field: "--ssh-key-file", Rule: fmt.Sprintf(format, args...)}
}

// parseSSHKeys checks SSH public keys, one per line ("TYPE BASE64
// [COMMENT]", as ssh.ParseAuthorizedKey reads it, without authorized_keys
// options); blank lines and lines starting with # are skipped; a CRLF line
// ending and spaces or tabs around a line are removed. It returns the keys
// joined by "\n" with a trailing "\n" (the form stored since the first
// release, so idempotency digests stay the same) or the problems, each
// prefixed with label (the flag and file name) and line.
func parseSSHKeys(label string, b []byte) (string, []*ErrInvalid) {
	if len(b) > maxSSHKeyFile {
		return "", []*ErrInvalid{keyProblem("%s: %v: more than %d KiB; at most %d keys of at most %d KiB each, %d KiB in all",
			label, errTooLarge, maxSSHKeyFile>>10, maxSSHKeys, maxSSHKeyLine>>10, maxSSHKeyFile>>10)}
	}
	var keys strings.Builder
	n := 0
	for i, l := range strings.Split(string(b), "\n") {
		at := fmt.Sprintf("%s line %d", label, i+1)
		l = strings.Trim(strings.TrimSuffix(l, "\r"), " \t")
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if len(l) > maxSSHKeyLine {
			return "", []*ErrInvalid{keyProblem("%s: %d bytes; a key line is at most %d bytes (%d KiB)", at, len(l), maxSSHKeyLine, maxSSHKeyLine>>10)}
		}
		if off, r, bad := badChar(l); bad {
			return "", []*ErrInvalid{keyProblem("%s: %s; a key line is TYPE BASE64 [COMMENT] without control characters (only a CRLF line ending is allowed)",
				at, describeBadChar(off, r))}
		}
		_, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(l))
		switch {
		case err != nil:
			// x/crypto appends "; last parsing error for ignored line: …",
			// which only says the base64 did not decode.
			reason, _, _ := strings.Cut(err.Error(), ";")
			return "", []*ErrInvalid{keyProblem("%s: not an SSH public key (%s): %s", at, reason, quoteInput(l))}
		case len(options) > 0:
			return "", []*ErrInvalid{keyProblem("%s: authorized_keys options (%s) are not allowed; give only TYPE BASE64 [COMMENT]",
				at, truncate(strings.Join(options, ","), maxQuotedInputLen))}
		case strings.Contains(comment, ": ") || strings.HasSuffix(comment, ":"):
			// PVE writes each key unquoted as a YAML list item: "a: b" would
			// turn it into a mapping and cloud-init would not install it.
			return "", []*ErrInvalid{keyProblem("%s: the key comment %s contains \": \" or ends with \":\", which breaks cloud-init's YAML; change the comment",
				at, quoteInput(comment))}
		}
		if n++; n > maxSSHKeys {
			return "", []*ErrInvalid{keyProblem("%s: more than %d keys; at most %d", label, maxSSHKeys, maxSSHKeys)}
		}
		keys.WriteString(l + "\n")
	}
	return keys.String(), nil
}

// ReadPasswordFile returns the first line of a password file (a trailing
// "\n", after any "\r", ends it): 1 to maxPasswordLen bytes of UTF-8 without control
// characters. The error never contains the password.
func ReadPasswordFile(path string) (string, error) {
	b, err := readLimited(path, maxPasswordFile)
	if err != nil {
		return "", err
	}
	pw := strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
	if err := checkPassword(pw); err != nil {
		return "", err
	}
	return pw, nil
}

// checkPassword checks a password's first line; the error never contains it.
func checkPassword(pw string) error {
	if pw == "" {
		return errors.New("the first line is empty")
	}
	if len(pw) > maxPasswordLen {
		return fmt.Errorf("the first line is %d bytes; a password is 1 to %d bytes", len(pw), maxPasswordLen)
	}
	if off, r, bad := badChar(pw); bad {
		return fmt.Errorf("the first line has %s; a password must not contain control characters (the line ends at the first \\n)",
			describeBadChar(off, r))
	}
	return nil
}

// checkIdempotencyKey checks an --idempotency-key ("" means none): 1 to
// maxIdemKeyLen printable ASCII characters without spaces.
func checkIdempotencyKey(k string) *ErrInvalid {
	if k == "" {
		return nil
	}
	ok := len(k) <= maxIdemKeyLen
	for i := 0; ok && i < len(k); i++ {
		ok = k[i] > ' ' && k[i] < 0x7f
	}
	if ok {
		return nil
	}
	return &ErrInvalid{Field: "--idempotency-key", Rule: fmt.Sprintf("--idempotency-key %s: want 1-%d printable ASCII characters without spaces, like order-4711",
		quoteInput(k), maxIdemKeyLen)}
}

// truncate shortens s to n characters (not bytes), newlines as spaces.
func truncate(s string, n int) string {
	r := []rune(strings.ReplaceAll(s, "\n", " "))
	if len(r) <= n {
		return string(r)
	}
	return string(r[:n-1]) + "…"
}
