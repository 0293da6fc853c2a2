package fingerprint

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// cpuFromFile reads the CPU count and model from a cpuinfo file. CPU facts
// only weigh the election, so it never fails: when the file is missing or
// does not parse it falls back to runtime.NumCPU() and an empty model.
func cpuFromFile(path string) (cores int, model string) {
	f, err := os.Open(path)
	if err != nil {
		return runtime.NumCPU(), ""
	}
	defer f.Close()
	cores, model, err = parseCPUInfo(f)
	if err != nil {
		return runtime.NumCPU(), ""
	}
	return cores, model
}

// memoryFromFile reads MemTotal from a meminfo file, in MiB.
func memoryFromFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	mb, err := parseMemInfo(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return mb, nil
}

// parseCPUInfo reads /proc/cpuinfo. cores is the number of "processor"
// entries. model is the first "model name" (x86 and others); where the
// kernel gives none, as on arm64, it is the "Hardware" line or, on older ARM
// kernels, the descriptive "Processor" line, and otherwise "". It fails when
// the input lists no processor, which is not a cpuinfo file this parser
// understands.
func parseCPUInfo(r io.Reader) (cores int, model string, err error) {
	var hardware, processor string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024) // flag lines are long
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "processor":
			if _, err := strconv.Atoi(value); err != nil {
				return 0, "", fmt.Errorf("processor entry %q is not a number", value)
			}
			cores++
		case "model name":
			if model == "" {
				model = value
			}
		case "Hardware":
			if hardware == "" {
				hardware = value
			}
		case "Processor":
			if processor == "" {
				processor = value
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, "", err
	}
	if cores == 0 {
		return 0, "", errors.New("no processor entries")
	}
	switch {
	case model != "":
	case hardware != "":
		model = hardware
	default:
		model = processor
	}
	return cores, model, nil
}

// parseMemInfo returns MemTotal from /proc/meminfo, converted from kB (which
// the kernel means as KiB) to MiB, rounded down.
func parseMemInfo(r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "MemTotal" {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("MemTotal %q is not of the form \"<number> kB\"", strings.TrimSpace(value))
		}
		kb, err := strconv.ParseUint(fields[0], 10, 63)
		if err != nil {
			return 0, fmt.Errorf("MemTotal %q is not a number of kB", fields[0])
		}
		if kb < 1024 {
			return 0, fmt.Errorf("MemTotal %d kB is less than 1 MiB", kb)
		}
		if kb/1024 > math.MaxInt {
			return 0, fmt.Errorf("MemTotal %d kB is too large", kb)
		}
		return int(kb / 1024), nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no MemTotal line")
}
