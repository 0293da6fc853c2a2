package gossip

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
)

const testID = "4b1d1a0e-6c3f-4d7a-9e2b-0f5a6b7c8d9e"

func fullMeta() Meta {
	return Meta{
		ID:          testID,
		Role:        "server",
		Pool:        "warm",
		Zone:        "zone-a",
		Datacenter:  "dc1",
		Region:      "global",
		Expect:      3,
		CPUCores:    8,
		MemoryMB:    16384,
		Identity:    bytes.Repeat([]byte{7}, 32),
		Endorsement: bytes.Repeat([]byte{9}, 64),
	}
}

func TestMetaRoundTrip(t *testing.T) {
	long := strings.Repeat("é", MaxNameLen/2) // 64 bytes of 2-byte runes
	tests := []struct {
		name string
		meta Meta
	}{
		{"full", fullMeta()},
		{"minimal", Meta{ID: testID, Role: "auto"}},
		{"client", Meta{ID: testID, Role: "client", Pool: "batch"}},
		{"key generations", func() Meta { m := fullMeta(); m.KeyNewest, m.KeyOldest, m.KeyInUse = 7, 5, 6; return m }()},
		{"largest key generations", Meta{ID: testID, Role: "auto", KeyNewest: math.MaxUint32, KeyOldest: math.MaxUint32, KeyInUse: math.MaxUint32}},
		{"CA generations only", func() Meta { m := fullMeta(); m.CANewest, m.CAOldest, m.CAIssued = 3, 2, 3; return m }()},
		{"CA issued only", Meta{ID: testID, Role: "auto", CAIssued: 1}},
		{"key and CA generations", func() Meta {
			m := fullMeta()
			m.KeyNewest, m.KeyOldest, m.KeyInUse = 7, 5, 6
			m.CANewest, m.CAOldest, m.CAIssued = 4, 3, 4
			return m
		}()},
		{"largest generations", Meta{ID: testID, Role: "auto",
			KeyNewest: math.MaxUint32, KeyOldest: math.MaxUint32, KeyInUse: math.MaxUint32,
			CANewest: math.MaxUint32, CAOldest: math.MaxUint32, CAIssued: math.MaxUint32}},
		{"bounds", Meta{ID: testID, Role: "auto", Pool: long, Zone: long, Datacenter: long, Region: long,
			Expect: maxExpect, CPUCores: maxCPUCores, MemoryMB: maxMemoryMB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.meta.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if diff := cmp.Diff(tt.meta, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMetaGenerationsEncoding checks which groups of generations Encode
// writes after the byte fields.
func TestMetaGenerationsEncoding(t *testing.T) {
	base, err := fullMeta().Encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*Meta)
		want []byte // what follows the byte fields
	}{
		{"none", func(*Meta) {}, nil},
		{"key", func(m *Meta) { m.KeyNewest, m.KeyOldest, m.KeyInUse = 2, 1, 2 }, []byte{2, 1, 2}},
		{"CA", func(m *Meta) { m.CANewest, m.CAOldest, m.CAIssued = 3, 1, 2 }, []byte{0, 0, 0, 3, 1, 2}},
		{"CA oldest", func(m *Meta) { m.CAOldest = 1 }, []byte{0, 0, 0, 0, 1, 0}},
		{"both", func(m *Meta) {
			m.KeyNewest, m.KeyOldest, m.KeyInUse = 2, 1, 2
			m.CANewest, m.CAOldest, m.CAIssued = 300, 299, 300
		}, []byte{2, 1, 2, 0xac, 0x02, 0xab, 0x02, 0xac, 0x02}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fullMeta()
			tt.edit(&m)
			b, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(b, base) || !bytes.Equal(b[len(base):], tt.want) {
				t.Errorf("Encode ends with %x, want %x", b[min(len(base), len(b)):], tt.want)
			}
		})
	}
}

func TestMetaEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Meta)
		want string
	}{
		{"empty ID", func(m *Meta) { m.ID = "" }, "not a UUID"},
		{"not a UUID", func(m *Meta) { m.ID = "node-1" }, "not a UUID"},
		{"upper-case UUID", func(m *Meta) { m.ID = strings.ToUpper(testID) }, "canonical"},
		{"UUID without hyphens", func(m *Meta) { m.ID = strings.ReplaceAll(testID, "-", "") }, "canonical"},
		{"empty role", func(m *Meta) { m.Role = "" }, "role"},
		{"unknown role", func(m *Meta) { m.Role = "leader" }, "role"},
		{"long pool", func(m *Meta) { m.Pool = strings.Repeat("p", MaxNameLen+1) }, "pool: longer than 64 bytes"},
		{"bad UTF-8", func(m *Meta) { m.Zone = "\xff" }, "zone: not valid UTF-8"},
		{"control", func(m *Meta) { m.Region = "a\nb" }, "region: contains a control character"},
		{"negative expect", func(m *Meta) { m.Expect = -1 }, "expect -1"},
		{"expect too big", func(m *Meta) { m.Expect = 256 }, "expect 256"},
		{"cores too many", func(m *Meta) { m.CPUCores = maxCPUCores + 1 }, "CPU cores"},
		{"memory too big", func(m *Meta) { m.MemoryMB = maxMemoryMB + 1 }, "memory MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fullMeta()
			tt.edit(&m)
			_, err := m.Encode()
			if err == nil {
				t.Fatal("Encode succeeded")
			}
			if !strings.HasPrefix(err.Error(), "gossip: meta: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q and %q", err, "gossip: meta: ", tt.want)
			}
		})
	}
}

func TestDecodeMetaErrors(t *testing.T) {
	good, err := fullMeta().Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Offsets in good: version 0, ID 1..16, role length 17.
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"version 0", edit(func(b []byte) []byte { b[0] = 0; return b }), "unknown format version 0"},
		{"version 1", edit(func(b []byte) []byte { b[0] = 1; return b }), "unknown format version 1"},
		{"version 3", edit(func(b []byte) []byte { b[0] = 3; return b }), "unknown format version 3"},
		{"short ID", good[:10], "truncated ID"},
		{"no role", good[:17], "role: truncated"},
		{"role cut", good[:19], "role: truncated"},
		{"unknown role", edit(func(b []byte) []byte { copy(b[18:], "xxxxxx"); return b }), "role \"xxxxxx\""},
		{"long string", edit(func(b []byte) []byte { b[17] = MaxNameLen + 1; return b }), "role: length 65 is over 64"},
		{"non-minimal length", append(append(bytes.Clone(good[:17]), 0x86, 0x00), good[18:]...), "not in shortest form"},
		{"overflow", append(bytes.Clone(good[:17]), bytes.Repeat([]byte{0xff}, 11)...), "overflows"},
		{"missing numbers", good[:len(good)-3-2-96], "truncated"},
		{"missing endorsement", good[:len(good)-64], "endorsement: truncated"},
		{"short identity", edit(func(b []byte) []byte { b[len(b)-98] = 31; return b }), "identity key has 31 bytes, not 32"},
		{"long endorsement", append(append(bytes.Clone(good[:len(good)-65]), 65), make([]byte, 65)...), "endorsement of 65 bytes is too long"},
		{"one key generation", append(bytes.Clone(good), 0), "oldest key generation: truncated"},
		{"two key generations", append(bytes.Clone(good), 1, 0), "key generation in use: truncated"},
		{"key generations 0", append(bytes.Clone(good), 0, 0, 0), "left out"},
		{"key generation too big", append(bytes.Clone(good), 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0), "outside 0..4294967295"},
		{"one CA generation", append(bytes.Clone(good), 1, 1, 1, 1), "oldest CA generation: truncated"},
		{"two CA generations", append(bytes.Clone(good), 0, 0, 0, 1, 0), "CA generation that issued the certificates: truncated"},
		{"CA generations 0", append(bytes.Clone(good), 1, 1, 1, 0, 0, 0), "CA generations 0 are left out"},
		{"key and CA generations 0", append(bytes.Clone(good), 0, 0, 0, 0, 0, 0), "CA generations 0 are left out"},
		{"CA generation too big", append(bytes.Clone(good), 0, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x10, 1), "oldest CA generation 4294967296 is outside 0..4294967295"},
		{"CA generation overflow", append(append(bytes.Clone(good), 0, 0, 0), bytes.Repeat([]byte{0xff}, 11)...), "newest CA generation: number overflows"},
		{"CA generation not shortest", append(bytes.Clone(good), 0, 0, 0, 0x81, 0x00, 1, 1), "newest CA generation: number not in shortest form"},
		{"trailing", append(bytes.Clone(good), 1, 1, 1, 0, 0, 1, 0), "1 trailing bytes"},
		{"trailing after key and CA", append(bytes.Clone(good), 1, 1, 1, 2, 2, 2, 0), "1 trailing bytes"},
		{"trailing after CA", append(bytes.Clone(good), 0, 0, 0, 2, 1, 2, 7, 7), "2 trailing bytes"},
		{"bad UTF-8", edit(func(b []byte) []byte { b[18] = 0xff; return b }), "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMeta(tt.in)
			if err == nil {
				t.Fatal("DecodeMeta succeeded")
			}
			if !strings.HasPrefix(err.Error(), "gossip: meta: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want prefix %q and %q", err, "gossip: meta: ", tt.want)
			}
		})
	}
}

func TestDecodeMetaBounds(t *testing.T) {
	for _, tt := range []struct {
		name      string
		numbers   []byte // expect, cores, memory as uvarints
		wantError string
	}{
		{"expect 256", []byte{0x80, 0x02, 0, 0}, "expect 256"},
		{"cores", []byte{0, 0x81, 0x80, 0x04, 0}, "CPU cores 65537"},
		{"memory", []byte{0, 0, 0x81, 0x80, 0x80, 0x80, 0x08}, "memory MB 2147483649"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Meta{ID: testID, Role: "auto"}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			b = append(b[:len(b)-3-2], tt.numbers...)
			b = append(b, 0, 0) // no identity, no endorsement
			_, err = DecodeMeta(b)
			if err == nil || !strings.Contains(err.Error(), tt.wantError) {
				t.Errorf("DecodeMeta error %v, want %q", err, tt.wantError)
			}
		})
	}
}

// TestMetaMaxSize proves the largest Meta fits memberlist's node meta.
func TestMetaMaxSize(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen)
	m := Meta{
		ID: testID, Role: "server", Pool: long, Zone: long, Datacenter: long, Region: long,
		Expect: maxExpect, CPUCores: maxCPUCores, MemoryMB: maxMemoryMB,
		Identity: make([]byte, 32), Endorsement: make([]byte, 64),
		KeyNewest: math.MaxUint32, KeyOldest: math.MaxUint32, KeyInUse: math.MaxUint32,
		CANewest: math.MaxUint32, CAOldest: math.MaxUint32, CAIssued: math.MaxUint32,
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// The role is the only string not at MaxNameLen; count it as if it were.
	size := len(b) + MaxNameLen - len(m.Role)
	if size != 480 {
		t.Errorf("largest meta is %d bytes, want the 480 that Encode documents", size)
	}
	if size > memberlist.MetaMaxSize {
		t.Errorf("largest meta is %d bytes, memberlist allows %d", size, memberlist.MetaMaxSize)
	}
	t.Logf("largest meta: %d bytes (limit %d)", size, memberlist.MetaMaxSize)
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		fullMeta(),
		{ID: testID, Role: "auto"},
		{ID: testID, Role: "client", KeyNewest: 2, KeyOldest: 1, KeyInUse: 1},
		{ID: testID, Role: "client", CANewest: 2, CAOldest: 1, CAIssued: 2},
		{ID: testID, Role: "server", KeyNewest: 3, KeyOldest: 2, KeyInUse: 3, CANewest: 2, CAOldest: 2, CAIssued: 1},
	} {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	// Not canonical: all-0 groups and bytes after the CA generations.
	minimal, err := Meta{ID: testID, Role: "auto"}.Encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, tail := range [][]byte{{0, 0, 0, 0, 0, 0}, {1, 1, 1, 0, 0, 0}, {0, 0, 0, 1, 1, 1, 1}} {
		f.Add(append(bytes.Clone(minimal), tail...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", m, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, enc)
		}
		m2, err := DecodeMeta(enc)
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
