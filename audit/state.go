package audit

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/internal/atomicfile"
	itlog "indelible.dev/tlog"
)

// MaxStateSize bounds a state file.
const MaxStateSize = 2 * itlog.MaxCheckpointSize

// State is what an auditor remembers between runs: the last checkpoint it
// verified. The checkpoint note is kept verbatim as evidence (a later fork
// is proven by it and the conflicting checkpoint together).
type State struct {
	Origin     string    `json:"origin"`
	Size       int64     `json:"size"`
	Root       tlog.Hash `json:"-"`
	Checkpoint string    `json:"checkpoint"` // the signed note
	VerifiedAt time.Time `json:"verified_at"`
}

// stateFields has State's fields but not its methods, so stateJSON does not
// recurse into State.MarshalJSON.
type stateFields State

type stateJSON struct {
	stateFields
	Root string `json:"root"`
}

// NewState returns the state recording a successful audit.
func NewState(r *Result) *State {
	return &State{Origin: r.Origin, Size: r.Size, Root: r.Root, Checkpoint: string(r.Checkpoint), VerifiedAt: time.Now().UTC()}
}

// MarshalJSON encodes the root in base64, as checkpoints do.
func (s State) MarshalJSON() ([]byte, error) {
	return json.Marshal(stateJSON{stateFields: stateFields(s), Root: base64.StdEncoding.EncodeToString(s.Root[:])})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (s *State) UnmarshalJSON(b []byte) error {
	var j stateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	h, err := itlog.ParseHash(j.Root)
	if err != nil {
		return err
	}
	*s = State(j.stateFields)
	s.Root = h
	return nil
}

// LoadState reads the state file at path. It returns nil and no error if
// the file does not exist (the first run). It checks that the stored
// checkpoint text matches the stored size and root, so a hand-edited file is
// caught; the note's signature was verified when it was saved.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: reading state: %w", err)
	}
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("audit: state file %s is larger than %d bytes", path, MaxStateSize)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("audit: state file %s: %w", path, err)
	}
	text, _, ok := itlog.SplitNote([]byte(s.Checkpoint))
	if !ok {
		return nil, fmt.Errorf("audit: state file %s: checkpoint is not a signed note", path)
	}
	cp, err := itlog.ParseCheckpoint(string(text))
	if err != nil || cp.Origin != s.Origin || cp.N != s.Size || cp.Hash != s.Root {
		return nil, fmt.Errorf("audit: state file %s: checkpoint does not match origin, size and root", path)
	}
	return &s, nil
}

// SaveState writes s to path atomically (a temporary file renamed over it),
// readable only by its owner.
func SaveState(path string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n')); err != nil {
		return fmt.Errorf("audit: saving state: %w", err)
	}
	return nil
}
