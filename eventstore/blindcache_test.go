package eventstore

import (
	"context"
	"reflect"
	"strings"
	"testing"
)

// stringsIn returns every string held in v, following pointers, structs,
// arrays, slices and maps (keys and values), unexported fields included.
func stringsIn(v reflect.Value, seen map[uintptr]bool, out *[]string) {
	switch v.Kind() {
	case reflect.String:
		*out = append(*out, v.String())
	case reflect.Pointer:
		if v.IsNil() || seen[v.Pointer()] {
			return
		}
		seen[v.Pointer()] = true
		stringsIn(v.Elem(), seen, out)
	case reflect.Struct:
		for i := range v.NumField() {
			stringsIn(v.Field(i), seen, out)
		}
	case reflect.Array, reflect.Slice:
		for i := range v.Len() {
			stringsIn(v.Index(i), seen, out)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			stringsIn(it.Key(), seen, out)
			stringsIn(it.Value(), seen, out)
		}
	}
}

// TestBlindCacheHoldsNoPlaintext: after events are appended, queried and
// erased, the blind-index cache holds no actor or resource id, and an
// erased event's actor and resource have no cache entry left.
func TestBlindCacheHoldsNoPlaintext(t *testing.T) {
	e := newEnv(t, nil)
	const marker = "CACHE-MARKER-e07c"
	a := e.append("writer",
		ev(marker+"-alice", "login", marker+"-repo", "success", "sso", e.clock.Now()),
		ev(marker+"-bob", "login", marker+"-db", "success", "sso", e.clock.Now()))
	if _, _, err := e.log.WaitSize(context.Background(), a[1].Index+1); err != nil {
		t.Fatal(err)
	}
	if got := e.listAll(mustQuery(t, "actor", marker+"-bob")); len(got) != 1 {
		t.Fatalf("query: %d records", len(got))
	}
	var held []string
	stringsIn(reflect.ValueOf(e.l.blind), map[uintptr]bool{}, &held)
	for _, s := range held {
		if strings.Contains(s, marker) {
			t.Errorf("the blind-index cache holds %q", s)
		}
	}
	bob, db := e.l.blind.idKeyOf(marker+"-bob"), e.l.blind.idKeyOf(marker+"-db")
	e.l.blind.mu.RLock()
	_, cachedBob := e.l.blind.ids[fieldActor][bob]
	e.l.blind.mu.RUnlock()
	if !cachedBob {
		t.Fatal("the actor queried is not cached: the test checks nothing")
	}
	if _, err := e.l.Erase(context.Background(), a[1].Index, "admin", "gdpr"); err != nil {
		t.Fatal(err)
	}
	e.l.blind.mu.RLock()
	_, cachedBob = e.l.blind.ids[fieldActor][bob]
	_, cachedDB := e.l.blind.ids[fieldResource][db]
	e.l.blind.mu.RUnlock()
	if cachedBob || cachedDB {
		t.Errorf("the erased event's actor (%v) or resource (%v) is still cached", cachedBob, cachedDB)
	}
}
