package statusview

import (
	"encoding/json"
	"regexp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/status"
)

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func decode(b []byte) (status.Status, error) {
	var s status.Status
	err := json.Unmarshal(b, &s)
	return s, err
}
