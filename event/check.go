package event

import "strconv"

// Check reports whether e, a writer's event built by a mapping (as the
// OTLP mapping builds them) rather than parsed from JSON, is acceptable:
// the same rules as ParseRequest (action, outcome, field caps, control
// characters, metadata a JSON object nested at most MaxMetadataDepth deep)
// and the size limit with room for the server's fields, so that an event
// Check accepts never fails once the server finishes it. e.Metadata may
// be any valid JSON object (it need not be canonical: Canonical makes it
// so). Errors are *Error with Position -1, wrapping ErrInvalid or
// ErrTooLarge.
func Check(e Event) error {
	// checkWriterSize (appendCanonical sizes its buffer once: a mapping
	// checks many events, and growing the buffer was most of the cost).
	b, cerr := appendCanonical(nil, &e)
	if cerr != nil {
		return cerr
	}
	if len(b) > MaxEventBytes-serverReserve {
		return &Error{Position: -1, Msg: "event is " + strconv.Itoa(len(b)) + " bytes in canonical form, over the limit of " +
			strconv.Itoa(MaxEventBytes-serverReserve) + " (" + strconv.Itoa(MaxEventBytes) + " once the server's fields are added)", Kind: ErrTooLarge}
	}
	return nil
}

// CheckFields is the part of Check that does not encode the event: the
// action, the outcome, and each string field's cap, UTF-8 and control
// characters, and the time's year. A mapping that builds metadata it knows
// to be a valid JSON object, small and shallow enough, may call it instead
// of Check (the OTLP mapping does, and falls back to Check otherwise).
// Errors are *Error with Position -1, wrapping ErrInvalid.
func CheckFields(e Event) error {
	if _, err := check(&e, -1); err != nil {
		return err
	}
	return nil
}
