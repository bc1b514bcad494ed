package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// secretRule is the rule a secret file breaks, as error messages state it.
const secretRule = "a secret file holds the secret on one line of printable characters, without spaces; only a trailing newline (\\n or \\r\\n) is allowed"

// readSecretFile reads a file holding one secret (an API token secret or a
// bare TSIG secret). One trailing newline, \n or \r\n, is trimmed; any other
// whitespace or non-printable character is an error. Errors name the file
// and the rule and never contain the secret.
func readSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u
		}
		return "", fmt.Errorf("cannot read: %w", err)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\r\n"); ok {
		s = t
	} else {
		s = strings.TrimSuffix(s, "\n")
	}
	if s == "" {
		return "", fmt.Errorf("file %s is empty", path)
	}
	if what, at, _ := badSecretChar(s, false); what != "" {
		return "", fmt.Errorf("file %s has %s at character %d: %s", path, what, at, secretRule)
	}
	return Secret(s), nil
}

// badSecretChar describes the first character of s a secret may not hold,
// its 1-based position in characters and its byte offset; "" if there is none. With layout, tabs and line
// breaks are allowed (a key file with several lines). The description never
// includes the secret's own characters.
func badSecretChar(s string, layout bool) (what string, pos, offset int) {
	for i, r := range s {
		pos++
		switch {
		case r == utf8.RuneError && isInvalidAt(s, i):
			return "a byte that is not valid UTF-8", pos, i
		case layout && (r == '\t' || r == '\n' || r == '\r' || r == ' '):
		case r == ' ':
			return "a space", pos, i
		case r == '\t':
			return "a tab", pos, i
		case r == '\r':
			return "a carriage return", pos, i
		case r == '\n':
			return "a line break", pos, i
		case r == '\uFEFF':
			return "a byte order mark (U+FEFF)", pos, i
		case unicode.IsSpace(r):
			return fmt.Sprintf("whitespace (U+%04X)", r), pos, i
		case !unicode.IsPrint(r):
			return fmt.Sprintf("a non-printable character (U+%04X)", r), pos, i
		}
	}
	return "", 0, 0
}

func isInvalidAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 1
}

// readZoneSecretFile reads a zone's secret_file. A bare base64 secret
// follows readSecretFile's rules. A BIND or Knot key file (it has braces,
// quotes, colons or semicolons, which base64 never does) may span lines and
// is parsed later (engine.ValidateConfig); here it may only not hold
// non-printable characters.
func readZoneSecretFile(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if u := errors.Unwrap(err); u != nil {
			err = u
		}
		return "", fmt.Errorf("cannot read: %w", err)
	}
	if !strings.ContainsAny(string(b), `{}":;`) {
		return readSecretFile(path)
	}
	if what, _, offset := badSecretChar(string(b), true); what != "" {
		line := strings.Count(string(b[:offset]), "\n") + 1
		return "", fmt.Errorf("file %s has %s on line %d: a key file holds printable text only", path, what, line)
	}
	return Secret(strings.TrimSpace(string(b))), nil
}
