package fingerprint

import (
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen)
	tests := []struct {
		name string
		ok   bool
	}{
		{"node-1", true},
		{"a", true},
		{"7", true},
		{"eu-west-1a", true},
		{"dc1", true},
		{"web_01.example.com", true},
		{"MixedCase", true},
		{long, true},
		{long + "a", false},
		{"", false},
		{"my pool", false},
		{"-node", false},
		{".node", false},
		{"_node", false},
		{"node/1", false},
		{"node:1", false},
		{"nöde", false},
		{"${var}", false},
		{"node\n", false},
		{"node\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName("zone", tt.name)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateName(%q) error = %v, want ok=%v", tt.name, err, tt.ok)
			}
		})
	}
	err := ValidateName("pool", "my pool")
	want := `fingerprint: pool "my pool" is invalid: use letters, digits, '.', '_' and '-' (at most 64), starting with a letter or digit`
	if err == nil || err.Error() != want {
		t.Errorf("ValidateName error = %v, want %q", err, want)
	}
}

func TestValidatePool(t *testing.T) {
	tests := []struct {
		name    string
		wantErr string // exact message; "" means valid
	}{
		{name: "default"},
		{name: "warm"},
		{name: "batch"},
		{name: "special"},
		{name: "gpu_a100-2"},
		{name: "All"},
		{name: "all", wantErr: `fingerprint: pool "all" is reserved by Nomad; choose another name`},
		{name: "a.b", wantErr: `fingerprint: pool "a.b" is invalid: use letters, digits, '_' and '-' (at most 64), starting with a letter or digit`},
		{name: "", wantErr: `fingerprint: pool "" is invalid: use letters, digits, '_' and '-' (at most 64), starting with a letter or digit`},
		{name: "my pool", wantErr: `fingerprint: pool "my pool" is invalid: use letters, digits, '_' and '-' (at most 64), starting with a letter or digit`},
		{name: "-warm", wantErr: `fingerprint: pool "-warm" is invalid: use letters, digits, '_' and '-' (at most 64), starting with a letter or digit`},
		{name: strings.Repeat("p", MaxNameLen+1), wantErr: "is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePool(tt.name)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidatePool(%q) error = %v, want nil", tt.name, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("ValidatePool(%q) = nil, want error", tt.name)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("ValidatePool(%q) error = %q, want %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestSanitizeHostname(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"node-1", "node-1"},
		{"Node-1.example.com", "Node-1.example.com"},
		{"ip-10-0-0-5.eu-west-1.compute.internal", "ip-10-0-0-5.eu-west-1.compute.internal"},
		{"host.example.com.", "host.example.com"},
		{"my host", "my-host"},
		{"nöde", "n-de"},
		{"日本", "node"},
		{"web:01/2", "web-01-2"},
		{"-_.node", "node"},
		{"..", "node"},
		{"", "node"},
		{"node-", "node"},
		{strings.Repeat("a", 70), strings.Repeat("a", MaxNameLen)},
		{strings.Repeat("a", 63) + "-b", strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := SanitizeHostname(tt.in)
			if got != tt.want {
				t.Errorf("SanitizeHostname(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err := ValidateName("name", got); err != nil {
				t.Errorf("SanitizeHostname(%q) = %q, which ValidateName rejects: %v", tt.in, got, err)
			}
		})
	}
}

func FuzzSanitizeHostname(f *testing.F) {
	for _, s := range []string{"node-1", "my host", "日本", "", "-_.", strings.Repeat("x", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := SanitizeHostname(in)
		if err := ValidateName("name", got); err != nil {
			t.Errorf("SanitizeHostname(%q) = %q: %v", in, got, err)
		}
		if ValidateName("name", in) == nil && got != strings.TrimRight(in, "._-") {
			t.Errorf("SanitizeHostname(%q) = %q changed a valid name beyond trailing punctuation", in, got)
		}
	})
}
