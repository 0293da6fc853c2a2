package fingerprint

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fakeSources() Sources {
	return Sources{
		Hostname: func() (string, error) { return "node-1\n", nil },
		CPU:      func() (int, string, error) { return 8, " AMD EPYC 7R13 ", nil },
		MemoryMB: func() (int, error) { return 32000, nil },
		Arch:     "amd64",
		OS:       "linux",
	}
}

func TestCollect(t *testing.T) {
	got, err := Collect(fakeSources())
	if err != nil {
		t.Fatalf("Collect() error = %v", err)
	}
	want := Facts{Hostname: "node-1", CPUCores: 8, CPUModel: "AMD EPYC 7R13", MemoryMB: 32000, Arch: "amd64", OS: "linux"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Collect() mismatch (-want +got):\n%s", diff)
	}
}

func TestCollectErrors(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		modify  func(*Sources)
		wantErr string
		wantIs  error
	}{
		{"nil hostname", func(s *Sources) { s.Hostname = nil }, "fingerprint: no source for the hostname", nil},
		{"nil CPU", func(s *Sources) { s.CPU = nil }, "fingerprint: no source for the CPU", nil},
		{"nil memory", func(s *Sources) { s.MemoryMB = nil }, "fingerprint: no source for the memory", nil},
		{"no arch", func(s *Sources) { s.Arch = "" }, "fingerprint: no architecture given", nil},
		{"no OS", func(s *Sources) { s.OS = "" }, "fingerprint: no operating system given", nil},
		{
			"hostname error",
			func(s *Sources) { s.Hostname = func() (string, error) { return "", errBoom } },
			"fingerprint: reading hostname: boom", errBoom,
		},
		{
			"empty hostname",
			func(s *Sources) { s.Hostname = func() (string, error) { return " \n", nil } },
			"fingerprint: reading hostname: the hostname is empty", nil,
		},
		{
			"CPU error",
			func(s *Sources) { s.CPU = func() (int, string, error) { return 0, "", errBoom } },
			"fingerprint: reading CPU: boom", errBoom,
		},
		{
			"zero cores",
			func(s *Sources) { s.CPU = func() (int, string, error) { return 0, "x", nil } },
			"fingerprint: reading CPU: 0 cores reported, want at least 1", nil,
		},
		{
			"memory error",
			func(s *Sources) { s.MemoryMB = func() (int, error) { return 0, errBoom } },
			"fingerprint: reading memory: boom", errBoom,
		},
		{
			"zero memory",
			func(s *Sources) { s.MemoryMB = func() (int, error) { return 0, nil } },
			"fingerprint: reading memory: 0 MiB reported, want at least 1", nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := fakeSources()
			tt.modify(&src)
			got, err := Collect(src)
			if err == nil {
				t.Fatalf("Collect() = %+v, want error %q", got, tt.wantErr)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Collect() error = %q, want %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Collect() error = %v, want it to wrap %v", err, tt.wantIs)
			}
			if !strings.HasPrefix(err.Error(), "fingerprint: ") {
				t.Errorf("Collect() error %q lacks the package prefix", err)
			}
		})
	}
}
