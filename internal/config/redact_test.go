package config

import (
	"strings"
	"testing"
)

// testTokenText is a well-formed token; its secret part must never appear
// in an error.
const testTokenText = "nbd1_aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypsaijcemsckjrhfausukzmfuxc6mbra"

// leaks reports whether msg holds a part of the token's body.
func leaks(msg string) bool {
	body := testTokenText[len("nbd1_"):]
	msg = strings.ToLower(msg)
	for i := 0; i+10 <= len(body); i += 5 {
		if strings.Contains(msg, body[i:i+10]) {
			return true
		}
	}
	return false
}

// A malformed file names the file, line and problem, but never the token.
func TestFileErrorsNeverQuoteTheToken(t *testing.T) {
	tok := testTokenText
	tests := []struct {
		name, src string
		want      string // in the error
	}{
		{"unquoted", "token = " + tok + "\n", "token = (redacted)"},
		{"unterminated", "token = \"" + tok + "\n", "token = (redacted)"},
		{"upper case key value", "token = \"" + strings.ToUpper(tok) + "\" bogus\n", ":1,"},
		{"as a key", tok + " = 1\n", "nbd1_(redacted)"},
		{"in another setting", "region = " + tok + "\n", "nbd1_(redacted)"},
		{"in a template", "name = \"${" + tok + "}\"\n", "nbd1_(redacted)"},
		{"in a block", "ca {\n  cert_file = " + tok + "\n}\n", "nbd1_(redacted)"},
		{"a token line that is fine, another that is not", "token = \"" + tok + "\"\nbogus = 1\n", "bogus"},
		{"spaces around the key", "  token   =  " + tok + "  \n", "token = (redacted)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
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
		_, err := parseFile([]byte(before+testTokenText+after), "config.hcl")
		if err != nil && leaks(err.Error()) {
			t.Fatalf("the error quotes the token: %v", err)
		}
	})
}
