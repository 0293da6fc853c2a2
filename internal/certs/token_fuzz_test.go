package certs

import (
	"strings"
	"testing"
	"time"
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
		"nbd2_",
		"nbd2_\xff\xfe",
		"garbage",
		"nbd2_" + strings.Repeat("a", 84),
		"nbd2_" + strings.Repeat("7", 84),
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

// FuzzParseCredential checks that ParseCredential never panics, that what
// it accepts re-encodes to its input, and that errors do not echo it.
func FuzzParseCredential(f *testing.F) {
	tok := katToken()
	client := tok.Client(time.Unix(1_800_000_000, 0)).Encode()
	for _, s := range []string{tok.Encode(), client, client[:100], client + "a", "nbd2c_", "nbd2c_" + strings.Repeat("7", 173), strings.ToUpper(client)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCredential(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "certs: ") {
				t.Errorf("ParseCredential(%q) error %q lacks the package prefix", s, err)
			}
			body := strings.ToLower(strings.TrimSpace(s))
			if i := strings.IndexByte(body, '_'); i >= 0 {
				body = body[i+1:]
			}
			if len(body) >= 16 && strings.Trim(body, "abcdefghijklmnopqrstuvwxyz234567") == "" && strings.Contains(err.Error(), body) {
				t.Errorf("ParseCredential(%q) error echoes the input: %v", s, err)
			}
			return
		}
		enc := c.Client.Encode()
		if t, ok := c.Server(); ok {
			enc = t.Encode()
		}
		if want := strings.ToLower(strings.TrimSpace(s)); enc != want {
			t.Errorf("ParseCredential(%q) accepted a non-canonical token: %q", s, enc)
		}
	})
}
