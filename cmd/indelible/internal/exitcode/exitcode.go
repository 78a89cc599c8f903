// Package exitcode holds the exit codes of the indelible commands and the
// error type that carries one to main.
package exitcode

import (
	"errors"
	"fmt"
)

// Exit codes of every command. The commands that verify something (audit,
// checkpoint, verify) exit with Failure when it does not verify.
const (
	Verified = 0 // success; for a verifying command, it verified
	Failure  = 1 // a verification failure: what was checked is wrong
	Trouble  = 2 // usage, network or other trouble: nothing was concluded
)

// Error is an error with the process exit code main should use; any other
// error exits with Trouble.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Usage returns a usage error (exit code Trouble) formatted as fmt.Errorf.
func Usage(format string, args ...any) error {
	return &Error{Trouble, fmt.Errorf(format, args...)}
}

// Of returns the process exit code for a command's error.
func Of(err error) int {
	var ee *Error
	switch {
	case err == nil:
		return Verified
	case errors.As(err, &ee):
		return ee.Code
	default:
		return Trouble
	}
}

// New returns err with the exit code code.
func New(code int, err error) *Error { return &Error{Code: code, Err: err} }
