package config

import (
	"strings"
	"testing"
	"time"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
)

// testTokens are a well-formed server token and client token; their secret
// parts must never appear in an error.
var testTokens = func() []string {
	var t certs.Token
	for i := range t.Secret {
		t.ClusterID[i%16], t.Secret[i] = byte(i), byte(3*i+1)
	}
	return []string{t.Encode(), t.Client(time.Unix(1_800_000_000, 0)).Encode()}
}()

// leaks reports whether msg holds a part of a token's body.
func leaks(msg string) bool {
	msg = strings.ToLower(msg)
	for _, tok := range testTokens {
		body := tok[strings.IndexByte(tok, '_')+1:]
		for i := 0; i+10 <= len(body); i += 5 {
			if strings.Contains(msg, body[i:i+10]) {
				return true
			}
		}
	}
	return false
}

// A malformed file names the file, line and problem, but never the token.
func TestFileErrorsNeverQuoteTheToken(t *testing.T) {
	for _, tok := range testTokens {
		testFileErrors(t, tok)
	}
}

func testFileErrors(t *testing.T, tok string) {
	tests := []struct {
		name, src string
		want      string // in the error
	}{
		{"unquoted", "token = " + tok + "\n", "token = (redacted)"},
		{"unterminated", "token = \"" + tok + "\n", "token = (redacted)"},
		{"upper case key value", "token = \"" + strings.ToUpper(tok) + "\" bogus\n", ":1,"},
		{"as a key", tok + " = 1\n", certs.Redacted},
		{"in another setting", "region = " + tok + "\n", certs.Redacted},
		{"in a template", "name = \"${" + tok + "}\"\n", certs.Redacted},
		{"in a block", "ca {\n  cert_file = " + tok + "\n}\n", certs.Redacted},
		{"a token line that is fine, another that is not", "token = \"" + tok + "\"\nbogus = 1\n", "bogus"},
		{"spaces around the key", "  token   =  " + tok + "  \n", "token = (redacted)"},
	}
	for _, tt := range tests {
		t.Run(tok[:6]+" "+tt.name, func(t *testing.T) {
			_, err := parseFile([]byte(tt.src), "config.hcl")
			if err == nil {
				t.Fatal("parseFile succeeded; want an error")
			}
			if leaks(err.Error()) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

// FuzzParseFileNeverQuotesToken embeds a token in arbitrary file text: the
// parser's errors never hold it.
func FuzzParseFileNeverQuotesToken(f *testing.F) {
	for _, seed := range [][2]string{
		{"token = ", "\n"},
		{"token = \"", "\n"},
		{"", " = 1\n"},
		{"name = \"${", "}\"\n"},
		{"ca {\n cert_file = ", "\n}"},
		{"join = [", "]"},
		{"token = <<EOT\n", "\nEOT"},
		{"x = ", "(1)"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, before, after string) {
		for _, tok := range testTokens {
			_, err := parseFile([]byte(before+tok+after), "config.hcl")
			if err != nil && leaks(err.Error()) {
				t.Fatalf("the error quotes the token: %v", err)
			}
		}
	})
}
