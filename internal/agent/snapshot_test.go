package agent

import (
	"errors"
	"testing"
)

func TestStaleConnection(t *testing.T) {
	tests := []struct {
		err  string
		want bool
	}{
		{"Unexpected response code: 500 (EOF)", true},
		{"Unexpected response code: 500 (rpc error: session shutdown)", true},
		{"Unexpected response code: 500 (rpc error: write tcp 127.0.0.1:1->127.0.0.2:4647: write: broken pipe)", true},
		{"Unexpected response code: 403 (Permission denied)", false},
		{"Unexpected response code: 500 (failed to restore snapshot: snapshot checksum mismatch)", false},
	}
	for _, tt := range tests {
		if got := staleConnection(errors.New(tt.err)); got != tt.want {
			t.Errorf("staleConnection(%q) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
