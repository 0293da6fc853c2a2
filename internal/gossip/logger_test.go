package gossip

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordHandler is a slog.Handler that keeps every record.
type recordHandler struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	Level slog.Level
	Msg   string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, logRecord{r.Level, msg})
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) all() []logRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]logRecord(nil), h.records...)
}

func TestStdLogger(t *testing.T) {
	tests := []struct {
		line string
		want logRecord
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5", logRecord{slog.LevelDebug, "memberlist: Stream connection from=1.2.3.4:5"}},
		{"[INFO] memberlist: Suspect n2 has failed", logRecord{slog.LevelInfo, "memberlist: Suspect n2 has failed"}},
		{"[WARN] memberlist: Refuting a dead message", logRecord{slog.LevelWarn, "memberlist: Refuting a dead message"}},
		{"[ERR] memberlist: Failed to send", logRecord{slog.LevelError, "memberlist: Failed to send"}},
		{"[ERROR] something", logRecord{slog.LevelError, "something"}},
		{"[TRACE] deep", logRecord{slog.LevelDebug, "deep"}},
		{"Err: Could not set the deadline", logRecord{slog.LevelInfo, "Err: Could not set the deadline"}},
		{"[NOTICE] odd", logRecord{slog.LevelInfo, "[NOTICE] odd"}},
		{"[unterminated", logRecord{slog.LevelInfo, "[unterminated"}},
		{"", logRecord{slog.LevelInfo, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			h := &recordHandler{}
			l := NewStdLogger(slog.New(h))
			l.Print(tt.line) // log adds the trailing newline
			if diff := cmp.Diff([]logRecord{tt.want}, h.all()); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}
