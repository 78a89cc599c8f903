package event

import "strings"

// The server's own records (reads, token changes, erasures, retention, and
// whatever the server records next) have an action starting with
// ServerActionPrefix and the source ServerSource. Nothing else may: a
// writer's event carrying either could pass for something the server did
// (a fake erasure, a read by someone else, a token that was never made).
const (
	ServerActionPrefix = "indelible."
	ServerSource       = "indelible"
)

// Reserved returns an *Error wrapping ErrReserved, naming the field
// ("action" or "source"), if e has an action or source reserved for the
// server, and nil otherwise. The comparison ignores case and surrounding
// spaces, so "Indelible.Read " is reserved too. position is the event's
// position in its request (see Error).
func Reserved(e *Event, position int) error {
	if isServerAction(e.Action) {
		return &Error{Position: position, Field: "action", Kind: ErrReserved,
			Msg: "actions starting with \"" + ServerActionPrefix + "\" are reserved for the server's own records"}
	}
	if isServerSource(e.Source) {
		return &Error{Position: position, Field: "source", Kind: ErrReserved,
			Msg: "source \"" + ServerSource + "\" is reserved for the server's own records"}
	}
	return nil
}

// IsServerRecord reports whether e has the action of a server record (see
// Reserved).
func IsServerRecord(e *Event) bool { return isServerAction(e.Action) }

func isServerAction(a string) bool {
	a = strings.ToLower(strings.TrimSpace(a))
	return strings.HasPrefix(a, ServerActionPrefix) || a == strings.TrimSuffix(ServerActionPrefix, ".")
}

func isServerSource(s string) bool {
	return strings.EqualFold(strings.TrimSpace(s), ServerSource)
}
