package dns

import (
	"errors"
	"regexp"
	"strings"
)

var (
	bindKeyName   = regexp.MustCompile(`(?s)\bkey\s+"?([^"\s{]+)"?\s*\{`)
	bindAlgorithm = regexp.MustCompile(`\balgorithm\s+"?([A-Za-z0-9.-]+)"?\s*;`)
	bindSecret    = regexp.MustCompile(`\bsecret\s+"([^"]+)"\s*;`)
	knotID        = regexp.MustCompile(`(?m)^\s*-?\s*id:\s*"?([^"\s]+)"?\s*$`)
	knotAlgorithm = regexp.MustCompile(`(?m)^\s*algorithm:\s*"?([A-Za-z0-9.-]+)"?\s*$`)
	knotSecret    = regexp.MustCompile(`(?m)^\s*secret:\s*"?([A-Za-z0-9+/=]+)"?\s*$`)
)

// ParseKey reads a TSIG key file (the "secret file" of a zone's configuration) in one of the
// forms the servers' tools write:
//
//   - BIND tsig-keygen / ddns-confgen: key "pvectl-key" { algorithm hmac-sha256; secret "…"; };
//   - Knot keymgr -t: key: - id: pvectl-key  algorithm: hmac-sha256  secret: …
//   - a bare base64 secret on its own (name and algorithm are then "").
//
// Its errors never contain the secret.
func ParseKey(data string) (name, algorithm, secret string, err error) {
	text := stripComments(data)
	if m := bindSecret.FindStringSubmatch(text); m != nil {
		secret = m[1]
		if n := bindKeyName.FindStringSubmatch(text); n != nil {
			name = n[1]
		}
		if a := bindAlgorithm.FindStringSubmatch(text); a != nil {
			algorithm = strings.ToLower(a[1])
		}
	} else if m := knotSecret.FindStringSubmatch(text); m != nil {
		secret = m[1]
		if n := knotID.FindStringSubmatch(text); n != nil {
			name = n[1]
		}
		if a := knotAlgorithm.FindStringSubmatch(text); a != nil {
			algorithm = strings.ToLower(a[1])
		}
	} else {
		fields := strings.Fields(text)
		if len(fields) != 1 {
			return "", "", "", errors.New("TSIG key file: expected a BIND key statement, a Knot key or a bare base64 secret")
		}
		secret = fields[0]
	}
	if _, err := decodeSecret(secret); err != nil {
		return "", "", "", errors.New("TSIG key file: " + err.Error())
	}
	if algorithm != "" {
		if _, err := canonicalAlgorithm(algorithm); err != nil {
			return "", "", "", errors.New("TSIG key file: " + err.Error())
		}
	}
	return name, algorithm, secret, nil
}

// stripComments drops whole-line # and // comments. (Inline comments are left alone: base64
// secrets may contain "//".)
func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "#") || strings.HasPrefix(t, "//") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
