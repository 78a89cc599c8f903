// Package receipt verifies an event's receipt offline for indelible verify.
package receipt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"indelible.dev/event"
	"indelible.dev/internal/exitcode"
	itlog "indelible.dev/tlog"
)

// Verify checks an event receipt (a c2sp.org/tlog-proof document carrying
// the event's opening) against policy, step by step, with no network, and
// prints the event. Any failure is an *exitcode.Error with exitcode.Failure
// naming the step that failed.
func Verify(w io.Writer, data []byte, policy itlog.Policy) error {
	fail := func(step string, err error) error {
		return exitcode.New(exitcode.Failure, fmt.Errorf("verify: %s: %w", step, err))
	}
	r, err := itlog.ParseReceipt(data)
	if err != nil {
		return fail("parsing the receipt", err)
	}
	cp, cosigners, err := policy.Open(r.Checkpoint)
	if err != nil {
		return fail("checking the checkpoint's signatures", err)
	}
	if r.Extra == nil {
		return fail("opening the commitment", errors.New("the receipt carries no extra line (salt and event bytes)"))
	}
	op, err := event.ParseOpening(r.Extra)
	if err != nil {
		return fail("opening the commitment", err)
	}
	ev, err := event.Decode(op.Bytes)
	if err != nil {
		return fail("decoding the event", err)
	}
	commitment := op.Commitment()
	leaf := tlog.RecordHash(commitment[:])
	if err := itlog.CheckInclusion(r.Proof, r.Index, cp.N, leaf, cp.Hash); err != nil {
		return fail(fmt.Sprintf("checking the inclusion proof of index %d in tree size %d", r.Index, cp.N), err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, op.Bytes, "", "  "); err != nil {
		return fail("decoding the event", err)
	}
	cosigned := ""
	if len(cosigners) > 0 {
		cosigned = ", cosigned by " + strings.Join(cosigners, ", ")
	}
	_, err = fmt.Fprintf(w, "%s\nverified: event %d (action %q) is in %s at tree size %d%s\ncommitment %s\n",
		pretty.Bytes(), r.Index, ev.Action, cp.Origin, cp.N, cosigned, base64.StdEncoding.EncodeToString(commitment[:]))
	return err
}
