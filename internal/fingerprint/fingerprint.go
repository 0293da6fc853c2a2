// Package fingerprint collects the facts about this machine that the election
// and the Nomad configuration need: address, CPU, memory, arch, OS, hostname
// and a stable node ID.
package fingerprint

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// DefaultAddress is the go-sockaddr template used when no address is given:
// the private address of the interface that holds the default route.
const DefaultAddress = "{{ GetPrivateIP }}"

// Facts are this machine's facts.
type Facts struct {
	Hostname string
	CPUCores int
	CPUModel string
	MemoryMB int
	Arch     string
	OS       string
}

// Sources are where facts come from; tests replace them.
type Sources struct {
	Hostname func() (string, error)
	CPU      func() (cores int, model string, err error)
	MemoryMB func() (int, error)
	Arch, OS string
}

// Paths of the proc files DefaultSources reads.
const (
	procCPUInfo = "/proc/cpuinfo"
	procMemInfo = "/proc/meminfo"
)

// DefaultSources reads the running machine:
//
//   - Hostname: os.Hostname.
//   - CPU: the processors and model listed in /proc/cpuinfo; when that file
//     is missing or unreadable, runtime.NumCPU() cores and an empty model.
//   - MemoryMB: MemTotal from /proc/meminfo, in MiB; an error when the file
//     is missing (non-Linux systems).
//   - Arch and OS: runtime.GOARCH and runtime.GOOS.
func DefaultSources() Sources {
	return Sources{
		Hostname: os.Hostname,
		CPU: func() (int, string, error) {
			cores, model := cpuFromFile(procCPUInfo)
			return cores, model, nil
		},
		MemoryMB: func() (int, error) { return memoryFromFile(procMemInfo) },
		Arch:     runtime.GOARCH,
		OS:       runtime.GOOS,
	}
}

// Collect gathers Facts from src. Every source must be set and give a usable
// value; errors name the fact that could not be read.
func Collect(src Sources) (Facts, error) {
	if src.Hostname == nil {
		return Facts{}, errors.New("fingerprint: no source for the hostname")
	}
	if src.CPU == nil {
		return Facts{}, errors.New("fingerprint: no source for the CPU")
	}
	if src.MemoryMB == nil {
		return Facts{}, errors.New("fingerprint: no source for the memory")
	}
	if src.Arch == "" {
		return Facts{}, errors.New("fingerprint: no architecture given")
	}
	if src.OS == "" {
		return Facts{}, errors.New("fingerprint: no operating system given")
	}

	host, err := src.Hostname()
	if err != nil {
		return Facts{}, fmt.Errorf("fingerprint: reading hostname: %w", err)
	}
	host = strings.TrimSpace(host)
	if host == "" {
		return Facts{}, errors.New("fingerprint: reading hostname: the hostname is empty")
	}

	cores, model, err := src.CPU()
	if err != nil {
		return Facts{}, fmt.Errorf("fingerprint: reading CPU: %w", err)
	}
	if cores < 1 {
		return Facts{}, fmt.Errorf("fingerprint: reading CPU: %d cores reported, want at least 1", cores)
	}

	mem, err := src.MemoryMB()
	if err != nil {
		return Facts{}, fmt.Errorf("fingerprint: reading memory: %w", err)
	}
	if mem < 1 {
		return Facts{}, fmt.Errorf("fingerprint: reading memory: %d MiB reported, want at least 1", mem)
	}

	return Facts{
		Hostname: host,
		CPUCores: cores,
		CPUModel: strings.TrimSpace(model),
		MemoryMB: mem,
		Arch:     src.Arch,
		OS:       src.OS,
	}, nil
}
