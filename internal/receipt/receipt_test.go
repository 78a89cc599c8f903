package receipt

import (
	"io"
	"strings"
	"testing"

	"indelible.dev/internal/exitcode"
	itlog "indelible.dev/tlog"
)

// TestVerifyNamesTheStep: a receipt that does not parse is a verification
// failure (exit 1) naming the step.
func TestVerifyNamesTheStep(t *testing.T) {
	err := Verify(io.Discard, []byte("not a receipt"), itlog.Policy{})
	if exitcode.Of(err) != exitcode.Failure || !strings.Contains(err.Error(), "verify: parsing the receipt") {
		t.Fatalf("Verify = %v (exit %d)", err, exitcode.Of(err))
	}
}
