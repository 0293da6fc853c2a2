package planfile

import (
	"errors"
	"fmt"
	"os"

	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/agree"
	"github.com/nomad-bootstrapd/nomad-bootstrapd/internal/atomicfile"
)

// LoadVote reads the vote file at path; nil when there is none. A vote that
// cannot be read is an error, not an empty vote: a node that forgot what it
// promised could help choose two plans of one epoch.
func LoadVote(path string) (*agree.Vote, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("planfile: reading the vote: %w", err)
	}
	v, err := agree.DecodeVote(b)
	if err != nil {
		return nil, fmt.Errorf("planfile: %s cannot be read (%v); restore it from a backup, or remove it once this node's cluster holds a committed plan", path, err)
	}
	return &v, nil
}

// SaveVote writes v to path atomically, readable by the owner only.
func SaveVote(path string, v agree.Vote) error {
	return atomicfile.WriteFile(path, append(v.Encode(), '\n'), 0o600)
}
