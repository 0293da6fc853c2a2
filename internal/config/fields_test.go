package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// leaves returns the address and name of every non-struct field of the
// struct v points to, nested structs included.
func leaves(v reflect.Value, prefix string) map[uintptr]string {
	out := map[uintptr]string{}
	v = v.Elem()
	for i := range v.NumField() {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Duration]() {
			for a, n := range leaves(f.Addr(), name+".") {
				out[a] = n
			}
			continue
		}
		out[f.Addr().Pointer()] = name
	}
	return out
}

// TestFieldsCoverConfig checks that every field of Config is in the table
// exactly once.
func TestFieldsCoverConfig(t *testing.T) {
	var c Config
	want := leaves(reflect.ValueOf(&c), "")
	got := map[uintptr]string{}
	for _, f := range Fields() {
		a := reflect.ValueOf(f.ptr(&c)).Pointer()
		name, ok := want[a]
		switch {
		case !ok:
			t.Errorf("field %s does not point into Config", f.Name())
		case got[a] != "":
			t.Errorf("fields %s and %s both set Config.%s", got[a], f.Name(), name)
		}
		got[a] = f.Name()
	}
	for a, name := range want {
		if got[a] == "" {
			t.Errorf("Config.%s has no field in the table", name)
		}
	}
}

// TestFieldNames checks the table's names: unique, flags spelled as their
// keys with dashes, a flag for every top-level setting and only string
// settings read from the environment.
func TestFieldNames(t *testing.T) {
	names, flags := map[string]bool{}, map[string]bool{}
	for _, f := range Fields() {
		if names[f.Name()] {
			t.Errorf("two fields named %s", f.Name())
		}
		names[f.Name()] = true
		if !regexp.MustCompile(`^[a-z][a-z_]*$`).MatchString(f.Key) {
			t.Errorf("key %q is not lower case with underscores", f.Key)
		}
		switch {
		case f.Block == "" && f.Flag != strings.ReplaceAll(f.Key, "_", "-"):
			t.Errorf("%s: flag %q, want %q", f.Name(), f.Flag, strings.ReplaceAll(f.Key, "_", "-"))
		case f.Block != "" && f.Flag != "":
			t.Errorf("%s: a setting in a block has flag %q", f.Name(), f.Flag)
		case f.Flag != "" && f.Usage == "":
			t.Errorf("%s: flag without help", f.Name())
		}
		if flags[f.Flag] && f.Flag != "" {
			t.Errorf("two fields with flag -%s", f.Flag)
		}
		flags[f.Flag] = true
		if f.Excludes != "" {
			if x, ok := Lookup(f.Excludes); !ok || x.Excludes != f.Name() {
				t.Errorf("%s excludes %q, which does not exclude it back", f.Name(), f.Excludes)
			}
		}
	}
	for _, reserved := range []string{"config", "root", "dry-run"} {
		if flags[reserved] {
			t.Errorf("flag -%s is the agent's own, not a setting's", reserved)
		}
	}
}

// TestEnvSettingsAreStrings: Env reads only string settings, so the
// environment never holds a value that fails to parse.
func TestEnvSettingsAreStrings(t *testing.T) {
	for _, f := range Fields() {
		if f.Env != "" && f.Kind() != String {
			t.Errorf("%s is read from %s but is a %v", f.Name(), f.Env, f.Kind())
		}
	}
}

func TestFieldGetAndDefault(t *testing.T) {
	c := Default()
	c.Join = []string{"a"}
	tests := []struct {
		name string
		kind Kind
		want any
	}{
		{"port", Int, 4650},
		{"role", String, "auto"},
		{"settle", Duration, 3 * time.Second},
		{"raw_exec", Bool, false},
		{"join", List, []string{"a"}},
		{"ca.key_file", String, ""},
	}
	for _, tt := range tests {
		f, ok := Lookup(tt.name)
		if !ok {
			t.Fatalf("no field %s", tt.name)
		}
		if f.Kind() != tt.kind {
			t.Errorf("%s is a %v, want %v", tt.name, f.Kind(), tt.kind)
		}
		if diff := cmp.Diff(tt.want, f.Get(c)); diff != "" {
			t.Errorf("%s: Get (-want +got):\n%s", tt.name, diff)
		}
	}
	if f, _ := Lookup("cert_lifetime"); f.Default() != 24*time.Hour {
		t.Errorf("cert_lifetime default %v", f.Default())
	}
	if got := List.String() + " " + Kind(9).String(); got != "list Kind(9)" {
		t.Errorf("Kind names: %q", got)
	}
}

// TestREADMEDocumentsEveryField compares the README's table of settings
// with Fields: the same keys, each with its flag.
func TestREADMEDocumentsEveryField(t *testing.T) {
	src, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(src), "| key (flag) | default | meaning |")
	table, _, _ = strings.Cut(table, "\n\n")
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)(?: \\{ ([a-z_, ]+) \\})?`(?: \\(`-([a-z-]+)[^`]*`\\))? \\|")
	var got, want []string
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		if m[2] != "" {
			for _, k := range strings.Split(m[2], ", ") {
				got = append(got, m[1]+"."+k)
			}
			continue
		}
		got = append(got, m[1]+" -"+m[3])
	}
	for _, f := range Fields() {
		if f.Block != "" {
			want = append(want, f.Name())
		} else {
			want = append(want, f.Key+" -"+f.Flag)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README.md's settings (-table +README):\n%s", diff)
	}
}
