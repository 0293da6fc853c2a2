package certs

import (
	"strings"
	"testing"
)

// FuzzParseToken checks that ParseToken never panics, that whatever it
// accepts is the canonical encoding of the result (after trimming and
// lowercasing), and that its errors do not echo a token-like input.
func FuzzParseToken(f *testing.F) {
	valid := katToken().Encode()
	seeds := []string{
		valid,
		valid + "\n",
		" " + strings.ToUpper(valid) + "\r\n",
		valid[:88],
		valid[:44],
		valid[:5],
		valid[:4],
		valid + "a",
		valid[:88] + "b",
		valid[:88] + "r",
		"nbd2_" + valid[5:],
		valid[5:],
		valid[:30] + "!" + valid[31:],
		valid[:30] + "é" + valid[31:],
		valid[:30] + "\u212a" + valid[31:],
		"",
		" \t\n",
		"nbd1_",
		"nbd1_\xff\xfe",
		"garbage",
		"nbd1_" + strings.Repeat("a", 84),
		"nbd1_" + strings.Repeat("7", 84),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if tok != (Token{}) {
				t.Errorf("ParseToken(%q) returned a token with error %v", s, err)
			}
			if !strings.HasPrefix(err.Error(), "certs: join token ") {
				t.Errorf("ParseToken(%q) error %q lacks the package prefix", s, err)
			}
			// A long run of alphabet characters cannot occur in an error
			// message unless it was copied from the input.
			body := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), tokenPrefix)
			if len(body) >= 16 && strings.Trim(body, "abcdefghijklmnopqrstuvwxyz234567") == "" &&
				strings.Contains(err.Error(), body) {
				t.Errorf("ParseToken(%q) error echoes the input: %v", s, err)
			}
			return
		}
		if got, want := tok.Encode(), strings.ToLower(strings.TrimSpace(s)); got != want {
			t.Errorf("ParseToken(%q) accepted a non-canonical token: Encode() = %q", s, got)
		}
		if strings.Contains(tok.String(), tok.Encode()[20:]) {
			t.Errorf("String() leaks: %q", tok.String())
		}
	})
}
