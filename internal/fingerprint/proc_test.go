package fingerprint

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		file      string
		wantCores int
		wantModel string
		wantErr   string // substring; "" means success
	}{
		{file: "cpuinfo-x86_64", wantCores: 4, wantModel: "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"},
		{file: "cpuinfo-arm64", wantCores: 2, wantModel: ""},
		{file: "cpuinfo-arm64-raspberrypi", wantCores: 4, wantModel: "BCM2835"},
		{file: "cpuinfo-armv7-old", wantCores: 2, wantModel: "Freescale i.MX 6Quad/DualLite (Device Tree)"},
		{file: "cpuinfo-empty", wantErr: "no processor entries"},
		{file: "cpuinfo-garbage", wantErr: "no processor entries"},
		{file: "cpuinfo-bad-processor", wantErr: `processor entry "zero" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cores, model, err := parseCPUInfo(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseCPUInfo() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCPUInfo() error = %v", err)
			}
			if cores != tt.wantCores || model != tt.wantModel {
				t.Errorf("parseCPUInfo() = %d, %q; want %d, %q", cores, model, tt.wantCores, tt.wantModel)
			}
		})
	}
}

func TestParseCPUInfoNoModelFallsBackToProcessorLine(t *testing.T) {
	in := "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\n"
	cores, model, err := parseCPUInfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if cores != 1 || model != "ARMv7 Processor rev 4 (v7l)" {
		t.Errorf("parseCPUInfo() = %d, %q", cores, model)
	}
}

func TestCPUFromFileFallsBack(t *testing.T) {
	tests := []struct {
		name, path string
	}{
		{"missing", filepath.Join(t.TempDir(), "cpuinfo")},
		{"garbage", filepath.Join("testdata", "cpuinfo-garbage")},
		{"empty", filepath.Join("testdata", "cpuinfo-empty")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cores, model := cpuFromFile(tt.path)
			if cores != runtime.NumCPU() || model != "" {
				t.Errorf("cpuFromFile() = %d, %q; want %d, \"\"", cores, model, runtime.NumCPU())
			}
		})
	}
	cores, model := cpuFromFile(filepath.Join("testdata", "cpuinfo-x86_64"))
	if cores != 4 || model == "" {
		t.Errorf("cpuFromFile(x86_64) = %d, %q", cores, model)
	}
}

func TestParseMemInfo(t *testing.T) {
	tests := []struct {
		file    string
		want    int
		wantErr string // substring; "" means success
	}{
		{file: "meminfo-x86_64", want: 15981}, // 16365004 kB
		{file: "meminfo-arm64", want: 3794},   // 3885584 kB
		{file: "meminfo-empty", wantErr: "no MemTotal line"},
		{file: "meminfo-no-memtotal", wantErr: "no MemTotal line"},
		{file: "meminfo-bad-number", wantErr: `MemTotal "16g" is not a number of kB`},
		{file: "meminfo-bad-unit", wantErr: `is not of the form "<number> kB"`},
		{file: "meminfo-no-unit", wantErr: `is not of the form "<number> kB"`},
		{file: "meminfo-tiny", wantErr: "less than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := parseMemInfo(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseMemInfo() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseMemInfo() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("parseMemInfo() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestMemoryFromFile(t *testing.T) {
	if _, err := memoryFromFile(filepath.Join(t.TempDir(), "meminfo")); !os.IsNotExist(err) {
		t.Errorf("memoryFromFile(missing) error = %v, want not exist", err)
	}
	_, err := memoryFromFile(filepath.Join("testdata", "meminfo-empty"))
	if err == nil || !strings.Contains(err.Error(), "meminfo-empty: no MemTotal line") {
		t.Errorf("memoryFromFile(empty) error = %v, want it to name the file", err)
	}
}

func TestDefaultSourcesOnThisMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	facts, err := Collect(DefaultSources())
	if err != nil {
		t.Fatalf("Collect(DefaultSources()) error = %v", err)
	}
	host, _ := os.Hostname()
	want := Facts{Hostname: host, Arch: runtime.GOARCH, OS: runtime.GOOS}
	got := Facts{Hostname: facts.Hostname, Arch: facts.Arch, OS: facts.OS}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Collect(DefaultSources()) mismatch (-want +got):\n%s", diff)
	}
	if facts.CPUCores < 1 || facts.MemoryMB < 1 {
		t.Errorf("Collect(DefaultSources()) = %+v, want cores and memory", facts)
	}
}

func FuzzParseCPUInfo(f *testing.F) {
	for _, name := range []string{"cpuinfo-x86_64", "cpuinfo-arm64", "cpuinfo-garbage"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, in string) {
		cores, _, err := parseCPUInfo(strings.NewReader(in))
		if err == nil && cores < 1 {
			t.Errorf("parseCPUInfo() = %d cores without error", cores)
		}
	})
}

func FuzzParseMemInfo(f *testing.F) {
	for _, name := range []string{"meminfo-x86_64", "meminfo-bad-unit"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, in string) {
		mb, err := parseMemInfo(strings.NewReader(in))
		if err == nil && mb < 1 {
			t.Errorf("parseMemInfo() = %d MiB without error", mb)
		}
	})
}
