package exitcode

import (
	"errors"
	"fmt"
	"testing"
)

func TestOf(t *testing.T) {
	cause := errors.New("cause")
	for _, c := range []struct {
		err  error
		want int
	}{
		{nil, Verified},
		{cause, Trouble},
		{&Error{Failure, cause}, Failure},
		{fmt.Errorf("wrapped: %w", &Error{Failure, cause}), Failure},
		{Usage("bad flag %d", 1), Trouble},
	} {
		if got := Of(c.err); got != c.want {
			t.Errorf("Of(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if err := (&Error{Failure, cause}); !errors.Is(err, cause) || err.Error() != "cause" {
		t.Errorf("Error does not keep its cause: %v", err)
	}
	if err := Usage("bad flag %d", 1); err.Error() != "bad flag 1" {
		t.Errorf("Usage = %q", err)
	}
}
