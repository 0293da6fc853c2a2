package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/certs"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/nomadconf"
)

// ReadFile returns the layer of the HCL configuration file at path. A
// missing file is an empty layer, or an error when required is true.
// Unknown keys and type errors name the file and line.
func ReadFile(path string, required bool) (Layer, error) {
	src, err := readRegular(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !required {
			return Layer{Source: path}, nil
		}
		return Layer{Source: path}, fmt.Errorf("config: %w", err)
	}
	return parseFile(src, path)
}

// maxFileSize bounds a configuration file; a real one is a few kilobytes.
const maxFileSize = 1 << 20

// readRegular reads the regular file at path (a symbolic link to one is
// fine). Anything else is refused without blocking: reading a FIFO or a
// device would wait for a writer or never end.
func readRegular(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		// A socket cannot be opened at all: say what it is.
		if fi, serr := os.Stat(path); serr == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
			return nil, fmt.Errorf("%s is %s, not a regular file", path, fileKind(fi.Mode()))
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case fi.IsDir():
		return nil, fmt.Errorf("%s is a directory; name the configuration file in it, such as %s", path, filepath.Join(path, "config.hcl"))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is %s, not a regular file", path, fileKind(fi.Mode()))
	case fi.Size() > maxFileSize:
		return nil, fmt.Errorf("%s is larger than %d bytes; is it the configuration file?", path, maxFileSize)
	}
	return io.ReadAll(io.LimitReader(f, maxFileSize+1))
}

// fileKind names the kind of file m is, for errors.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// schema returns the HCL schema of the fields in block ("" for the top
// level): their keys, and at the top level the blocks. A block's keys are
// required in it.
func schema(block string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	blocks := map[string]bool{}
	for _, f := range fields {
		switch {
		case f.Block == block:
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: f.Key, Required: block != ""})
		case block == "" && !blocks[f.Block]:
			blocks[f.Block] = true
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: f.Block})
		}
	}
	return s
}

// parseFile decodes the configuration file src, read from path.
func parseFile(src []byte, path string) (Layer, error) {
	l := Layer{Source: path}
	f, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return Layer{Source: path}, diagError(diags, src)
	}
	var durErrs []error
	var decode func(body hcl.Body, block string)
	decode = func(body hcl.Body, block string) {
		content, d := body.Content(schema(block))
		diags = diags.Extend(d)
		for _, fd := range fields {
			a, ok := content.Attributes[fd.Key]
			if fd.Block != block || !ok {
				continue
			}
			if p, ok := fd.ptr(&l.Config).(*time.Duration); ok {
				var s string
				if d := gohcl.DecodeExpression(a.Expr, nil, &s); d.HasErrors() {
					diags = diags.Extend(d)
					continue
				}
				v, err := time.ParseDuration(s)
				if err != nil {
					durErrs = append(durErrs, fmt.Errorf("config: %s: %s %q is not a duration such as %q",
						path, fd.Name(), s, nomadconf.FormatDuration(fd.Default().(time.Duration))))
					continue
				}
				*p = v
			} else {
				diags = diags.Extend(gohcl.DecodeExpression(a.Expr, nil, fd.ptr(&l.Config)))
			}
			l.set(fd.Name())
		}
		if block != "" {
			return
		}
		seen := map[string]*hcl.Block{}
		for _, b := range content.Blocks {
			if prev, dup := seen[b.Type]; dup {
				diags = diags.Append(&hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Duplicate %s block", b.Type),
					Detail:   fmt.Sprintf("Only one %s block is allowed. Another was defined at %s.", b.Type, prev.DefRange),
					Subject:  &b.DefRange,
				})
				continue
			}
			seen[b.Type] = b
			decode(b.Body, b.Type)
		}
	}
	decode(f.Body, "")
	if diags.HasErrors() {
		return Layer{Source: path}, diagError(diags, src)
	}
	if len(durErrs) > 0 {
		return Layer{Source: path}, errors.Join(durErrs...)
	}
	return l, nil
}

// diagError turns HCL diagnostics into one error naming file, line and
// column and quoting the line, e.g. `config.hcl:3,1-6: bogus = 1: Unsupported
// argument; An argument named "bogus" is not expected here.` Nothing that
// looks like a token is quoted, nor the value of a token line.
func diagError(diags hcl.Diagnostics, src []byte) error {
	lines := strings.Split(string(src), "\n")
	var msgs []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		m := d.Summary
		if d.Detail != "" {
			m += "; " + d.Detail
		}
		if d.Subject != nil {
			if l := d.Subject.Start.Line; l >= 1 && l <= len(lines) && strings.TrimSpace(lines[l-1]) != "" {
				m = quoteLine(lines[l-1]) + ": " + m
			}
			m = d.Subject.String() + ": " + m
		}
		msgs = append(msgs, certs.Redact(m))
	}
	return fmt.Errorf("config: %s", strings.Join(msgs, "\n"))
}

// quoteLine returns line as diagError quotes it: trimmed, and with the value
// of a token setting left out, whatever it holds.
func quoteLine(line string) string {
	line = strings.TrimSpace(line)
	if key, _, ok := strings.Cut(line, "="); ok && strings.TrimSpace(key) == "token" {
		return "token = (redacted)"
	}
	return line
}
