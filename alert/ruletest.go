package alert

import (
	"fmt"
	"os"
	"slices"
	"time"

	"indelible.dev/event"
)

// TestResult is the outcome of one inline test of a rule.
type TestResult struct {
	Rule, Test string
	Err        error // nil: passed
	Fires      int
	Groups     []string
}

// testEpoch is the received_at of an inline test's first event that has
// no time (each next one a second later).
var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// RunTests runs every rule's inline tests: a fresh evaluator of that rule
// alone reads the test's NDJSON events (as a writer would send them) in
// order, each with index = its line's position and received_at = its time;
// absent rules' clock ticks to each event's time before it. The firings
// (resolves not counted) and their groups are compared with expect.
func RunTests(rs *Rules) []TestResult {
	var out []TestResult
	for _, r := range rs.Rules {
		for _, tc := range r.Tests {
			res := TestResult{Rule: r.Name, Test: tc.Name}
			res.Err = runTest(r, tc, &res)
			out = append(out, res)
		}
	}
	return out
}

func runTest(r *Rule, tc RuleTest, res *TestResult) error {
	body, err := os.ReadFile(tc.Events)
	if err != nil {
		return err
	}
	evs, err := event.ParseRequest("application/x-ndjson", body)
	if err != nil {
		return fmt.Errorf("%s: %w", tc.Events, err)
	}
	var e *Evaluator
	for i := range evs {
		ev := &evs[i]
		at := ev.Time
		if at.IsZero() {
			at = testEpoch.Add(time.Duration(i) * time.Second)
		}
		ev.Finish(at, "test")
		if e == nil {
			e = NewEvaluator(&Rules{Rules: []*Rule{r}}, 0, at)
		}
		fs := e.Tick(at)
		fs = append(fs, e.Evaluate(&Input{Index: int64(i), Event: *ev})...)
		for _, f := range fs {
			if !f.Resolved {
				res.Fires++
				res.Groups = append(res.Groups, f.Group)
			}
		}
	}
	if res.Fires != tc.Fires {
		return fmt.Errorf("%d firings, expected %d (groups %q)", res.Fires, tc.Fires, res.Groups)
	}
	if tc.Groups != nil && !slices.Equal(res.Groups, tc.Groups) {
		return fmt.Errorf("groups %q, expected %q", res.Groups, tc.Groups)
	}
	return nil
}
