package statusview

import (
	"encoding/json"
	"regexp"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agent"
)

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func decode(b []byte) (agent.Status, error) {
	var s agent.Status
	err := json.Unmarshal(b, &s)
	return s, err
}
