package pvesim

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maskedPassword is what PVE shows instead of a set cipassword (GET
// config, GET pending); pvesim's own dumps show it too.
const maskedPassword = "**********"

// cryptedRe is qemu-server's test for a cipassword that is already a crypt
// string (update_vm_api / create_vm leave those as they are).
var cryptedRe = regexp.MustCompile(`^\$(?:[156]|2[ay])(\$.+){2}`)

// cryptB64 is crypt(3)'s base64 alphabet.
var cryptB64 = base64.NewEncoding("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

// cryptPW stands in for glibc's SHA-256 crypt: the same "$5$salt$hash"
// shape, not the same hash.
func cryptPW(salt, pw string) string {
	h := sha256.Sum256([]byte(salt + "$" + pw))
	return "$5$" + salt + "$" + cryptB64.EncodeToString(h[:])
}

// cryptPassword is PVE::Tools::encrypt_pw applied to the cipassword
// parameter: PVE never stores the clear text.
func (c *call) cryptPassword() {
	v, ok := c.params["cipassword"]
	if !ok {
		return
	}
	pw, _ := scalar(v)
	if cryptedRe.MatchString(pw) {
		return
	}
	seed := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%s", c.path, c.s.now().UnixNano(), pw)))
	c.params["cipassword"] = cryptPW(cryptB64.EncodeToString(seed[:])[:16], pw)
}

// maskPassword hides cipassword in a rendered config the way qemu-server
// does: GET config masks a true value, GET pending any defined one.
func maskPassword(conf map[string]any, defined bool) map[string]any {
	v, ok := conf["cipassword"]
	if !ok {
		return conf
	}
	if s, _ := v.(string); defined || (s != "" && s != "0") {
		conf["cipassword"] = maskedPassword
	}
	return conf
}

func maskConfig(conf map[string]string) map[string]string {
	if _, ok := conf["cipassword"]; ok {
		conf["cipassword"] = maskedPassword
	}
	return conf
}

// CheckCIPassword says whether VM vmid's cipassword is password (PVE
// stores it crypted and never shows it; this is how a test checks that a
// password reached the VM).
func (s *Sim) CheckCIPassword(vmid int, password string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runTasks()
	m := s.vms[vmid]
	if m == nil {
		return false
	}
	stored, ok := m.conf["cipassword"]
	if !ok {
		return false
	}
	if parts := strings.Split(stored, "$"); len(parts) == 4 && parts[1] == "5" {
		return cryptPW(parts[2], password) == stored
	}
	return stored == password
}

// uriUnescape is URI::Escape::uri_unescape: every %XX becomes its byte;
// anything else (a "%" without two hex digits, "+") stays as it is.
func uriUnescape(s string) string {
	unhex := func(b byte) (byte, bool) {
		switch {
		case b >= '0' && b <= '9':
			return b - '0', true
		case b >= 'a' && b <= 'f':
			return b - 'a' + 10, true
		case b >= 'A' && b <= 'F':
			return b - 'A' + 10, true
		}
		return 0, false
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				out.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// checkSSHKeys is qemu-server's sshkeys check (update_vm_api, create_vm):
// the value is URI-unescaped and every non-blank line must be a public key
// `ssh-keygen -l` accepts (PVE::Tools::validate_ssh_public_keys), else the
// call fails with 500 "SSH public key validation error".
func (c *call) checkSSHKeys() *apiError {
	v, ok := c.params["sshkeys"]
	if !ok {
		return nil
	}
	enc, _ := scalar(v)
	for _, line := range strings.Split(uriUnescape(enc), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
			return serverErr("SSH public key validation error")
		}
	}
	return nil
}
