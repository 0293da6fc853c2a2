package nomadver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		err  bool
	}{
		{in: "Nomad v1.6.3\nBuildDate 2023-10-30T12:58:10Z\nRevision e0497bff14378d68cad76a801cc0eba93ce05039\n", want: Version{1, 6, 3, ""}},
		{in: "Nomad v1.10.0-beta.1\nBuildDate 2025-03-01T00:00:00Z\n", want: Version{1, 10, 0, "beta.1"}},
		{in: "Nomad v1.6.3+ent", want: Version{1, 6, 3, "ent"}},
		{in: "1.11.3", want: Version{1, 11, 3, ""}},
		{in: "Nomad v2.0.1-dev", want: Version{2, 0, 1, "dev"}},
		{in: "", err: true},
		{in: "Nomad", err: true},
		{in: "1.6", err: true},
		{in: "v99999999999999999999.1.1", err: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("Parse(%q) error = %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, v := range []Version{{1, 6, 3, ""}, {1, 10, 0, "beta.1"}, {2, 0, 0, ""}} {
		got, err := Parse(v.String())
		if err != nil || got != v {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", v.String(), got, err, v)
		}
	}
}

func TestCompare(t *testing.T) {
	tests := []struct {
		a, b Version
		want int
	}{
		{Version{1, 6, 3, ""}, Version{1, 6, 3, "ent"}, 0},
		{Version{1, 6, 3, ""}, Version{1, 10, 0, ""}, -1},
		{Version{1, 10, 0, ""}, Version{1, 9, 9, ""}, 1},
		{Version{2, 0, 0, ""}, Version{1, 11, 9, ""}, 1},
		{Version{1, 6, 0, ""}, Version{1, 6, 1, ""}, -1},
	}
	for _, tt := range tests {
		if got := tt.a.Compare(tt.b); got != tt.want {
			t.Errorf("%s.Compare(%s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFor(t *testing.T) {
	tests := []struct {
		v                      string
		notify, keyring, intro bool
		tooOld                 bool
	}{
		{v: "1.5.6", tooOld: true},
		{v: "0.12.0", tooOld: true},
		{v: "1.6.0"},
		{v: "1.6.3"},
		{v: "1.7.0"},
		{v: "1.8.0", notify: true},
		{v: "1.10.5", notify: true},
		{v: "1.11.0", notify: true, keyring: true, intro: true},
		{v: "2.0.0", notify: true, keyring: true, intro: true},
		{v: "3.1.0", notify: true, keyring: true, intro: true},
	}
	for _, tt := range tests {
		v, err := Parse(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		f, err := For(v)
		if tt.tooOld {
			if !errors.Is(err, ErrTooOld) || !strings.Contains(err.Error(), "1.6 or newer") {
				t.Errorf("For(%s) error = %v, want ErrTooOld naming 1.6", tt.v, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("For(%s): %v", tt.v, err)
		}
		if f.NotifyReady != tt.notify || f.RegisterNeedsKeyring != tt.keyring || f.ClientIntroduction != tt.intro {
			t.Errorf("For(%s) = %+v, want notify %v, registration needs the keyring %v, introduction %v", tt.v, f, tt.notify, tt.keyring, tt.intro)
		}
	}
}

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, bin, want, err string
	}{
		{name: "real output", bin: script("ok", `[ "$1" = version ] && printf 'Nomad v1.6.3\nBuildDate 2023-10-30T12:58:10Z\nRevision e0497bff\n'`), want: "1.6.3"},
		{name: "fails", bin: script("fail", `echo "boom" >&2; exit 3`), err: "boom"},
		{name: "prints nonsense", bin: script("junk", `echo hello`), err: "printed no version"},
		{name: "missing", bin: filepath.Join(dir, "absent"), err: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Detect(context.Background(), tt.bin)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Detect error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || v.String() != tt.want {
				t.Fatalf("Detect = %s, %v; want %s", v, err, tt.want)
			}
		})
	}
}

func TestSupported(t *testing.T) {
	for v, want := range map[string]string{
		"1.6.0": "", "1.6.3": "", "1.11.2": "", "2.0.9": "",
		"1.5.6": "too old", "2.1.0": "newer than the 2.0 line", "3.0.0": "newer than the 2.0 line",
	} {
		err := Supported(mustParse(t, v))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("Supported(%s) = %v, want %q", v, err, want)
		}
	}
}

func mustParse(t *testing.T, s string) Version {
	t.Helper()
	v, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
