package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// NewStdLogger returns a *log.Logger that sends each line to l. Lines that
// start with a level tag as memberlist and other HashiCorp libraries write
// them ("[DEBUG] ", "[INFO] ", "[WARN] ", "[ERR] ", "[ERROR] ") are logged
// at the matching slog level with the tag removed; other lines at Info.
// The returned logger adds no timestamp of its own.
func NewStdLogger(l *slog.Logger) *log.Logger {
	return log.New(slogWriter{l}, "", 0)
}

// slogWriter is the io.Writer behind NewStdLogger. log.Logger calls Write
// once per line.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	line = strings.TrimSuffix(line, "\r")
	level, msg := parseLevel(line)
	w.l.Log(context.Background(), level, msg)
	return len(p), nil
}

// levelTags maps the tags of HashiCorp's log lines to slog levels.
var levelTags = map[string]slog.Level{
	"TRACE":   slog.LevelDebug,
	"DEBUG":   slog.LevelDebug,
	"INFO":    slog.LevelInfo,
	"WARN":    slog.LevelWarn,
	"WARNING": slog.LevelWarn,
	"ERR":     slog.LevelError,
	"ERROR":   slog.LevelError,
}

// parseLevel splits a leading "[LEVEL] " tag off line.
func parseLevel(line string) (slog.Level, string) {
	if !strings.HasPrefix(line, "[") {
		return slog.LevelInfo, line
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return slog.LevelInfo, line
	}
	level, ok := levelTags[line[1:end]]
	if !ok {
		return slog.LevelInfo, line
	}
	return level, strings.TrimPrefix(line[end+1:], " ")
}
