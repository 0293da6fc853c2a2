package fingerprint

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest name ValidateName accepts, in bytes.
const MaxNameLen = 64

// ValidateName checks a name used for a node name, pool, zone, datacenter or
// region: 1 to MaxNameLen bytes of ASCII letters, digits, '.', '_' and '-',
// starting with a letter or digit. kind names the value in the error, e.g.
// "zone". These rules are stricter than Nomad's, so that every name is also
// safe in file names, HCL and node metadata.
func ValidateName(kind, s string) error {
	if !validName(s, true) {
		return fmt.Errorf("fingerprint: %s %q is invalid: use letters, digits, '.', '_' and '-' (at most %d), starting with a letter or digit",
			kind, s, MaxNameLen)
	}
	return nil
}

// ValidatePool checks a node pool name: the rules of ValidateName without
// '.', which Nomad does not allow in pool names, and not "all", which Nomad
// reserves. "default" is Nomad's built-in pool and is allowed.
func ValidatePool(s string) error {
	if !validName(s, false) {
		return fmt.Errorf("fingerprint: pool %q is invalid: use letters, digits, '_' and '-' (at most %d), starting with a letter or digit",
			s, MaxNameLen)
	}
	if s == "all" {
		return fmt.Errorf("fingerprint: pool %q is reserved by Nomad; choose another name", s)
	}
	return nil
}

// SanitizeHostname turns a hostname into a name ValidateName accepts: every
// other character becomes '-', leading and trailing characters other than
// letters and digits are dropped, and the result is cut to MaxNameLen bytes.
// It returns "node" when nothing is left.
func SanitizeHostname(h string) string {
	var b strings.Builder
	for _, r := range h {
		if r < 0x80 && nameChar(byte(r), true) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeftFunc(b.String(), func(r rune) bool { return !alnum(byte(r)) })
	if len(s) > MaxNameLen {
		s = s[:MaxNameLen]
	}
	s = strings.TrimRightFunc(s, func(r rune) bool { return !alnum(byte(r)) })
	if s == "" {
		return "node"
	}
	return s
}

func validName(s string, allowDot bool) bool {
	if s == "" || len(s) > MaxNameLen || !alnum(s[0]) {
		return false
	}
	for i := range len(s) {
		if !nameChar(s[i], allowDot) {
			return false
		}
	}
	return true
}

func nameChar(c byte, allowDot bool) bool {
	return alnum(c) || c == '_' || c == '-' || (allowDot && c == '.')
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
