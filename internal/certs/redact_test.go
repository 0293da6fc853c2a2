package certs

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	tok, err := NewToken(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	full := tok.Encode()
	client := tok.Client(time.Time{}).Encode()
	tests := []struct {
		name, in, want string
	}{
		{"no token", "expect = 3", "expect = 3"},
		{"a whole token", "token = " + full, "token = " + Redacted},
		{"quoted", `token = "` + full + `"`, `token = "` + Redacted + `"`},
		{"cut short", "token = " + full[:20], "token = " + Redacted},
		{"upper case", "token = " + strings.ToUpper(full), "token = " + Redacted},
		{"another version", "nbd2_abcdef and nbd1_xyz", Redacted + " and " + Redacted},
		{"a client token", "token = " + client, "token = " + Redacted},
		{"a client token in upper case", strings.ToUpper(client), Redacted},
		{"two on a line", full + "," + full, Redacted + "," + Redacted},
		{"in a sentence", "An argument named \"" + full + "\" is not expected here.", "An argument named \"" + Redacted + "\" is not expected here."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.in)
			if got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(strings.ToLower(got), full[5:15]) {
				t.Errorf("Redact left part of the token in %q", got)
			}
		})
	}
}
