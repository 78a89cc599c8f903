package api

import (
	"encoding/json"
	"testing"
	"time"
)

// TestGolden pins the bytes on the wire: these are the JSON the server sent
// and the client read before the types moved here, field for field.
func TestGolden(t *testing.T) {
	at := time.Date(2026, 12, 7, 15, 4, 32, 490249964, time.UTC)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{AppendReply{Events: []Appended{{Index: 1}, {Index: 2, ID: "k5"}, {Index: 3, ID: "x", Receipt: "c2sp.org/tlog-proof@v1\n"}}},
			`{"events":[{"index":1},{"index":2,"id":"k5"},{"index":3,"id":"x","receipt":"c2sp.org/tlog-proof@v1\n"}]}`},
		{AppendReply{Events: []Appended{}}, `{"events":[]}`},
		{TokenRequest{Name: "alice", Scopes: []string{"read"}}, `{"name":"alice","scopes":["read"]}`},
		{NewToken{Token: Token{Name: "alice", Scopes: []string{"read"}, Created: at}, Secret: "ind_S1aH"},
			`{"name":"alice","scopes":["read"],"created":"2026-12-07T15:04:32.490249964Z","token":"ind_S1aH"}`},
		{TokenList{Tokens: []Token{{Name: "admin", Scopes: []string{"admin"}, Created: at, LastUsed: at.Add(time.Second)},
			{Name: "bob", Scopes: []string{"append", "read"}, Created: at, Revoked: at.Add(time.Minute)}}},
			`{"tokens":[{"name":"admin","scopes":["admin"],"created":"2026-12-07T15:04:32.490249964Z","last_used":"2026-12-07T15:04:33.490249964Z"},` +
				`{"name":"bob","scopes":["append","read"],"created":"2026-12-07T15:04:32.490249964Z","revoked":"2026-12-07T15:05:32.490249964Z"}]}`},
		{TokenList{Tokens: []Token{}}, `{"tokens":[]}`},
	} {
		b, err := json.Marshal(tc.v)
		if err != nil || string(b) != tc.want {
			t.Errorf("%T: %s %v\nwant %s", tc.v, b, err, tc.want)
		}
	}
}
