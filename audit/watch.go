package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"indelible.dev/client"
)

// Limits of the monitor's outgoing requests.
const (
	// ObservePath is the witness endpoint that takes a checkpoint seen
	// elsewhere (the signed note as the body) and records a fork if it is
	// inconsistent with the witness's view.
	ObservePath = "/v1/witness/observe"
	// MaxReplyBody bounds what is read from a webhook or witness reply.
	MaxReplyBody = 64 << 10
	// notifyTimeout bounds one alert or gossip request.
	notifyTimeout = 10 * time.Second
)

// Alert is the JSON body POSTed to the alert webhook when a run finds an
// inconsistency.
type Alert struct {
	Event      string    `json:"event"` // "verification_failure"
	Log        string    `json:"log"`   // the log's URL
	Origin     string    `json:"origin"`
	Kind       string    `json:"kind"`     // a Kind constant
	Resource   string    `json:"resource"` // what failed
	Message    string    `json:"message"`
	Checkpoint string    `json:"checkpoint,omitempty"` // the checkpoint fetched, signed note
	Previous   string    `json:"previous,omitempty"`   // the last verified one, signed note
	Time       time.Time `json:"time"`
}

// NewAlert describes failure f of the log at logURL.
func NewAlert(logURL, origin string, f *Failure) Alert {
	return Alert{Event: "verification_failure", Log: logURL, Origin: origin, Kind: f.Kind, Resource: f.Resource,
		Message: f.Error(), Checkpoint: string(f.Checkpoint), Previous: string(f.Previous), Time: time.Now().UTC()}
}

// SendAlert POSTs a as JSON to webhook.
func SendAlert(ctx context.Context, c *client.Client, webhook string, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	_, err = c.Post(ctx, webhook, "application/json", b, MaxReplyBody)
	return err
}

// IsInconsistency reports whether f is evidence about checkpoints (a fork, a
// checkpoint that went backwards, a failed consistency proof, a root the
// tiles do not produce) that witnesses should see, as opposed to a bad
// signature, which proves nothing about the log.
func IsInconsistency(f *Failure) bool {
	switch f.Kind {
	case KindFork, KindBackwards, KindConsistency, KindRoot:
		return true
	}
	return false
}

// Gossip submits the checkpoints of f (the one fetched and the last verified
// one) to the observe endpoint of each witness (base URLs), so the witnesses
// compare them with their own view and record a fork. It tries every
// witness and checkpoint, returns one line per accepted submission (the
// witness and its answer, e.g. {"result":"fork",...}), and the errors joined.
func Gossip(ctx context.Context, c *client.Client, witnesses []string, f *Failure) ([]string, error) {
	var errs []error
	var answers []string
	for _, w := range witnesses {
		u := strings.TrimSuffix(w, "/") + ObservePath
		for _, cp := range [][]byte{f.Previous, f.Checkpoint} {
			if len(cp) == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
			b, err := c.Post(ctx, u, "text/plain; charset=utf-8", cp, MaxReplyBody)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("audit: gossip to %s: %w", w, err))
				continue
			}
			answers = append(answers, w+": "+strings.TrimSpace(string(b)))
		}
	}
	return answers, errors.Join(errs...)
}
