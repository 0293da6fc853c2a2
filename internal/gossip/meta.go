package gossip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// metaVersion is the first byte of an encoded Meta.
const metaVersion = 2

// Bounds of Meta's numbers.
const (
	maxExpect   = 255
	maxCPUCores = 1 << 16
	maxMemoryMB = 1 << 31
)

// Roles a node may ask for.
var validRoles = map[string]bool{"auto": true, "server": true, "client": true}

// Encode returns m in its compact binary form:
//
//	version byte (1)
//	ID: 16 raw bytes
//	Role, Pool, Zone, Datacenter, Region: uvarint length + UTF-8 bytes
//	Expect, CPUCores, MemoryMB: uvarints
//	Identity, Endorsement: uvarint length + bytes
//	KeyNewest, KeyOldest, KeyInUse: uvarints, only when one of these or
//	  of the CA generations is not 0
//	CANewest, CAOldest, CAIssued: uvarints, only when one is not 0
//
// Identity is empty or 32 bytes, Endorsement empty or 64. The key
// generations are left out while all are 0, so that a node whose agents'
// gossip key never rotated announces what earlier agents read; likewise the
// CA generations while all are 0. The key generations are written, even as
// 0s, before CA generations that are not. The result is at most 480 bytes,
// within memberlist's MetaMaxSize of 512.
//
// It fails when ID is not a UUID in canonical text form, when a string is
// longer than MaxNameLen bytes, not UTF-8 or holds control characters, when
// Role is not auto, server or client, or when a number is out of bounds.
func (m Meta) Encode() ([]byte, error) {
	id, err := uuid.Parse(m.ID)
	if err != nil || id.String() != m.ID {
		return nil, fmt.Errorf("gossip: meta: ID %q is not a UUID in canonical form", m.ID)
	}
	if !validRoles[m.Role] {
		return nil, fmt.Errorf("gossip: meta: role %q is not auto, server or client", m.Role)
	}
	b := make([]byte, 0, 64)
	b = append(b, metaVersion)
	b = append(b, id[:]...)
	for _, f := range m.stringFields() {
		if err := CheckName(*f.v); err != nil {
			return nil, fmt.Errorf("gossip: meta: %s: %w", f.name, err)
		}
		b = binary.AppendUvarint(b, uint64(len(*f.v)))
		b = append(b, *f.v...)
	}
	for _, f := range m.numberFields() {
		if *f.v < 0 || uint64(*f.v) > f.max {
			return nil, fmt.Errorf("gossip: meta: %s %d is outside 0..%d", f.name, *f.v, f.max)
		}
		b = binary.AppendUvarint(b, uint64(*f.v))
	}
	for _, f := range m.byteFields() {
		if err := f.check(len(*f.v)); err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(*f.v)))
		b = append(b, *f.v...)
	}
	// A group of generations is written when it or a later one is not all
	// 0, so that each group keeps its place.
	groups := m.generationGroups()
	n := 0
	for i, g := range groups {
		if !g.zero() {
			n = i + 1
		}
	}
	for _, g := range groups[:n] {
		for _, v := range g.v {
			b = binary.AppendUvarint(b, uint64(*v))
		}
	}
	return b, nil
}

// DecodeMeta parses the output of Meta.Encode. It is strict: an unknown
// version, a truncated or over-long input, a field out of bounds or a
// non-canonical number is an error. It never panics on any input.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) == 0 {
		return Meta{}, errors.New("gossip: meta: empty")
	}
	if b[0] != metaVersion {
		return Meta{}, fmt.Errorf("gossip: meta: unknown format version %d", b[0])
	}
	b = b[1:]
	if len(b) < 16 {
		return Meta{}, errors.New("gossip: meta: truncated ID")
	}
	id, err := uuid.FromBytes(b[:16])
	if err != nil {
		return Meta{}, fmt.Errorf("gossip: meta: ID: %w", err)
	}
	m.ID = id.String()
	b = b[16:]
	for _, f := range m.stringFields() {
		s, rest, err := readString(b)
		if err != nil {
			return Meta{}, fmt.Errorf("gossip: meta: %s: %w", f.name, err)
		}
		*f.v, b = s, rest
	}
	if !validRoles[m.Role] {
		return Meta{}, fmt.Errorf("gossip: meta: role %q is not auto, server or client", m.Role)
	}
	for _, f := range m.numberFields() {
		v, n, err := readUvarint(b)
		if err != nil {
			return Meta{}, fmt.Errorf("gossip: meta: %s: %w", f.name, err)
		}
		if v > f.max {
			return Meta{}, fmt.Errorf("gossip: meta: %s %d is outside 0..%d", f.name, v, f.max)
		}
		*f.v, b = int(v), b[n:]
	}
	for _, f := range m.byteFields() {
		l, n, err := readUvarint(b)
		if err != nil {
			return Meta{}, fmt.Errorf("gossip: meta: %s: %w", f.name, err)
		}
		if l > 64 {
			return Meta{}, fmt.Errorf("gossip: meta: %s of %d bytes is too long", f.name, l)
		}
		if err := f.check(int(l)); err != nil {
			return Meta{}, err
		}
		b = b[n:]
		if uint64(len(b)) < l {
			return Meta{}, fmt.Errorf("gossip: meta: %s: truncated", f.name)
		}
		if l > 0 {
			*f.v = bytes.Clone(b[:l])
		}
		b = b[l:]
	}
	groups := m.generationGroups()
	n := 0
	for _, g := range groups {
		if len(b) == 0 {
			break
		}
		if b, err = g.read(b); err != nil {
			return Meta{}, err
		}
		n++
	}
	if n > 0 && groups[n-1].zero() {
		return Meta{}, fmt.Errorf("gossip: meta: %s generations 0 are left out, not encoded", groups[n-1].what)
	}
	if len(b) != 0 {
		return Meta{}, fmt.Errorf("gossip: meta: %d trailing bytes", len(b))
	}
	return m, nil
}

// generationGroup is a group of three generations that may end an encoded
// Meta, each a uvarint of at most math.MaxUint32.
type generationGroup struct {
	what  string // what the generations are of, for errors
	names [3]string
	v     [3]*uint32
}

// generationGroups returns m's groups of generations in the order they are
// encoded.
func (m *Meta) generationGroups() []generationGroup {
	return []generationGroup{
		{"key", [3]string{"newest key generation", "oldest key generation", "key generation in use"},
			[3]*uint32{&m.KeyNewest, &m.KeyOldest, &m.KeyInUse}},
		{"CA", [3]string{"newest CA generation", "oldest CA generation", "CA generation that issued the certificates"},
			[3]*uint32{&m.CANewest, &m.CAOldest, &m.CAIssued}},
	}
}

// zero reports whether all of g's generations are 0.
func (g generationGroup) zero() bool {
	return *g.v[0] == 0 && *g.v[1] == 0 && *g.v[2] == 0
}

// read reads g's three generations from the start of b and returns the rest
// of b.
func (g generationGroup) read(b []byte) ([]byte, error) {
	for i, name := range g.names {
		v, n, err := readUvarint(b)
		if err != nil {
			return nil, fmt.Errorf("gossip: meta: %s: %w", name, err)
		}
		if v > math.MaxUint32 {
			return nil, fmt.Errorf("gossip: meta: %s %d is outside 0..%d", name, v, uint32(math.MaxUint32))
		}
		*g.v[i], b = uint32(v), b[n:]
	}
	return b, nil
}

type stringField struct {
	name string
	v    *string
}

func (m *Meta) stringFields() []stringField {
	return []stringField{
		{"role", &m.Role},
		{"pool", &m.Pool},
		{"zone", &m.Zone},
		{"datacenter", &m.Datacenter},
		{"region", &m.Region},
	}
}

type numberField struct {
	name string
	v    *int
	max  uint64
}

func (m *Meta) numberFields() []numberField {
	return []numberField{
		{"expect", &m.Expect, maxExpect},
		{"CPU cores", &m.CPUCores, maxCPUCores},
		{"memory MB", &m.MemoryMB, maxMemoryMB},
	}
}

type bytesField struct {
	name string
	v    *[]byte
	size int // the one length allowed besides 0
}

func (f bytesField) check(n int) error {
	if n != 0 && n != f.size {
		return fmt.Errorf("gossip: meta: %s has %d bytes, not %d", f.name, n, f.size)
	}
	return nil
}

func (m *Meta) byteFields() []bytesField {
	return []bytesField{
		{"identity key", &m.Identity, 32},
		{"endorsement", &m.Endorsement, 64},
	}
}

// CheckName reports whether s may be a node name or a Meta string: at most
// MaxNameLen bytes of UTF-8 without control characters. It may be empty.
func CheckName(s string) error {
	if len(s) > MaxNameLen {
		return fmt.Errorf("longer than %d bytes", MaxNameLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return errors.New("contains a control character")
		}
	}
	return nil
}

// readUvarint reads a canonical (shortest form) uvarint from the start of b
// and returns it with the number of bytes it took.
func readUvarint(b []byte) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, 0, errors.New("truncated")
	case n < 0:
		return 0, 0, errors.New("number overflows 64 bits")
	case n > 1 && b[n-1] == 0:
		return 0, 0, errors.New("number not in shortest form")
	}
	return v, n, nil
}

// readString reads a uvarint length and that many bytes holding a valid
// name (see CheckName), and returns the string and the rest of b.
func readString(b []byte) (string, []byte, error) {
	l, n, err := readUvarint(b)
	if err != nil {
		return "", nil, err
	}
	if l > MaxNameLen {
		return "", nil, fmt.Errorf("length %d is over %d", l, MaxNameLen)
	}
	b = b[n:]
	if uint64(len(b)) < l {
		return "", nil, errors.New("truncated")
	}
	s := string(b[:l])
	if err := CheckName(s); err != nil {
		return "", nil, err
	}
	return s, b[l:], nil
}
