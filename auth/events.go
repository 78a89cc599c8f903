package auth

import (
	"encoding/json"

	"indelible.dev/event"
)

// Token changes are recorded in the log as events the server writes itself
// (docs/events.md): the actor is the admin token that made the change (or
// ServerActor for the first admin token, made at first start), the resource
// the token changed, and the metadata its name and scopes. Never its secret.
const (
	ActionCreate = "indelible.token.create"
	ActionRevoke = "indelible.token.revoke"
	// ServerActor names the server itself, as the actor (and submitter) of
	// what it does on its own. No token may take this name.
	ServerActor = "indelible"
	// EventSource is the source of the events the server records itself.
	EventSource = "indelible"
)

// tokenMeta is the metadata of a token event.
type tokenMeta struct {
	Name   string  `json:"name"`
	Scopes []Scope `json:"scopes"`
}

// Event returns the event recording action (ActionCreate or ActionRevoke)
// on t, done by actor (a token name, or ServerActor). It holds t's name and
// scopes, nothing secret.
func Event(action, actor string, t Token) event.Event {
	md, _ := json.Marshal(tokenMeta{Name: t.Name, Scopes: t.Scopes}) // cannot fail: strings only
	actorType := "token"
	if actor == ServerActor {
		actorType = "server"
	}
	return event.Event{
		Actor:    &event.Actor{ID: actor, Type: actorType},
		Action:   action,
		Resource: &event.Resource{Type: "token", ID: t.Name},
		Source:   EventSource,
		Metadata: md,
	}
}

// Get returns the named token's public record (ErrNoToken if none).
func (s *Store) Get(name string) (Token, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byName[name]
	if !ok {
		return Token{}, ErrNoToken
	}
	return e.rec.Token.clone(), nil
}
