package event

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sampleEventList = "../testdata/kubernetes/eventlist.json"

func TestFromKubernetesSample(t *testing.T) {
	body, err := os.ReadFile(sampleEventList)
	if err != nil {
		t.Fatal(err)
	}
	evs, err := FromKubernetes(body)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		id, action, actor, actorType, ip, resType, resID, outcome string
		time                                                      string
	}
	wants := []want{
		{"6f1c2b8e-3a4d-4f7e-9b1a-0c5d7e9f1a21", "k8s.get", "alice@example.com", "user", "10.0.0.7", "pods", "prod/payments-7d9f", "success", "2026-11-25T10:15:00.104567Z"},
		{"0a9e4d1f-77c2-4b35-8d2e-5e6f7a8b9c01", "k8s.list", "alice@example.com", "user", "10.0.0.7", "pods", "prod/", "success", "2026-11-25T10:15:01.231456Z"},
		{"c3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b", "k8s.create", "system:serviceaccount:ci:deployer", "serviceaccount", "10.2.14.3", "deployments", "prod/checkout", "success", "2026-11-25T10:16:12.538901Z"},
		{"d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6", "k8s.patch", "alice@example.com", "user", "10.0.0.7", "deployments", "prod/checkout", "success", "2026-11-25T10:17:03.04421Z"},
		{"e7f8a9b0-c1d2-4e3f-a4b5-c6d7e8f9a0b1", "k8s.delete", "alice@example.com", "user", "10.0.0.7", "configmaps", "prod/feature-flags", "success", "2026-11-25T10:18:40.021337Z"},
		{"f0e1d2c3-b4a5-4968-8776-655443322110", "k8s.get", "bob@example.com", "user", "192.168.4.20", "secrets", "prod/db-password", "denied", "2026-11-25T10:19:05.301122Z"},
		{"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/ResponseStarted", "k8s.watch", "system:kube-controller-manager", "user", "172.18.0.2", "configmaps", "prod/", "success", "2026-11-25T10:20:00.0009Z"},
		{"2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e/ResponseStarted", "k8s.create", "alice@example.com", "user", "10.0.0.7", "pods/exec", "prod/payments-7d9f", "success", "2026-11-25T10:21:30.012Z"},
		{"2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", "k8s.create", "alice@example.com", "user", "10.0.0.7", "pods/exec", "prod/payments-7d9f", "success", "2026-11-25T10:24:02.87Z"},
		{"3c4d5e6f-7a8b-4c9d-8e0f-2a3b4c5d6e7f", "k8s.list", "alice@example.com", "user", "10.0.0.7", "nodes", "", "success", "2026-11-25T10:25:00.019Z"},
		{"4d5e6f7a-8b9c-4d0e-9f1a-3b4c5d6e7f80", "k8s.delete", "mallory@example.com", "user", "203.0.113.9", "namespaces", "kube-system", "denied", "2026-11-25T10:26:13.0008Z"},
		{"5e6f7a8b-9c0d-4e1f-a02b-4c5d6e7f8091", "k8s.get", "alice@example.com", "user", "10.0.0.7", "deployments", "staging/api", "failure", "2026-11-25T10:27:00.004Z"},
		{"6f7a8b9c-0d1e-4f2a-b13c-5d6e7f8091a2", "k8s.get", "system:anonymous", "user", "198.51.100.23", "", "", "success", "2026-11-25T10:28:00.0003Z"},
	}
	if len(evs) != len(wants) {
		t.Fatalf("%d events, want %d", len(evs), len(wants))
	}
	ids := map[string]bool{}
	for i, w := range wants {
		e := evs[i]
		if ids[e.ID] {
			t.Errorf("event %d: id %q twice", i, e.ID)
		}
		ids[e.ID] = true
		var resType, resID string
		if e.Resource != nil {
			resType, resID = e.Resource.Type, e.Resource.ID
		}
		got := want{e.ID, e.Action, e.Actor.ID, e.Actor.Type, e.Actor.IP, resType, resID, e.Outcome, e.Time.Format(time.RFC3339Nano)}
		if got != w {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got, w)
		}
		if e.Source != "kube-apiserver" {
			t.Errorf("event %d: source %q", i, e.Source)
		}
		e.Finish(t0, "kube")
		b, err := Canonical(e)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	// The 403 keeps what Kubernetes said, in metadata.
	var meta map[string]any
	if err := json.Unmarshal(evs[5].Metadata, &meta); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"code": 403.0, "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/prod/secrets/db-password",
		"userAgent": "kubectl/v1.30.5 (darwin/arm64) kubernetes/74e84a9", "statusReason": "Forbidden",
		"auditID": "f0e1d2c3-b4a5-4968-8776-655443322110", "level": "Metadata",
	} {
		if meta[k] != v {
			t.Errorf("metadata %q = %v, want %v", k, meta[k], v)
		}
	}
	if ips, _ := meta["sourceIPs"].([]any); len(ips) != 2 || ips[1] != "10.0.0.1" {
		t.Errorf("sourceIPs = %v", meta["sourceIPs"])
	}
	if ann, _ := meta["annotations"].(map[string]any); ann["authorization.k8s.io/decision"] != "forbid" {
		t.Errorf("annotations = %v", meta["annotations"])
	}
	if _, ok := meta["requestObject"]; ok {
		t.Error("request body copied")
	}
	// A retried batch maps to the same ids and bytes.
	again, err := FromKubernetes(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		a, _ := Canonical(again[i])
		b, _ := Canonical(evs[i])
		if string(a) != string(b) {
			t.Errorf("event %d maps differently the second time", i)
		}
	}
}

func TestFromKubernetesOutcomes(t *testing.T) {
	for code, want := range map[string]string{
		`100`: "success", `101`: "success", `200`: "success", `201`: "success", `299`: "success",
		`300`: "failure", `400`: "failure", `401`: "denied", `403`: "denied", `404`: "failure", `409`: "failure", `500`: "failure",
	} {
		body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"verb":"get","responseStatus":{"code":` + code + `}}]}`
		evs, err := FromKubernetes([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if evs[0].Outcome != want {
			t.Errorf("code %s: outcome %q, want %q", code, evs[0].Outcome, want)
		}
	}
	evs, err := FromKubernetes([]byte(`{"items":[{"verb":"get","stage":"RequestReceived","auditID":"x","requestReceivedTimestamp":"2026-01-01T00:00:00Z"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if e := evs[0]; e.Outcome != OutcomeUnknown || e.ID != "x/RequestReceived" || e.Actor != nil || e.Resource != nil || !e.Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("%+v", e)
	}
}

func TestFromKubernetesRejects(t *testing.T) {
	tests := []struct {
		name, body string
		kind       error
		pos        int
		field, msg string
	}{
		{"empty", "", ErrInvalid, -1, "", "empty body"},
		{"not JSON", "{", ErrInvalid, -1, "", "EventList"},
		{"wrong version", `{"apiVersion":"audit.k8s.io/v1beta1","items":[{"verb":"get"}]}`, ErrInvalid, -1, "apiVersion", "audit.k8s.io/v1"},
		{"wrong kind", `{"kind":"Event","items":[{"verb":"get"}]}`, ErrInvalid, -1, "kind", "EventList"},
		{"no items", `{"kind":"EventList","items":[]}`, ErrInvalid, -1, "items", "no events"},
		{"item not an object", `{"items":[{"verb":"get"},7]}`, ErrInvalid, 1, "", "not an audit event"},
		{"no verb", `{"items":[{"verb":"get"},{"auditID":"x"}]}`, ErrInvalid, 1, "verb", "required"},
		{"bad time", `{"items":[{"verb":"get","stageTimestamp":"now"}]}`, ErrInvalid, 0, "stageTimestamp", "RFC 3339"},
		{"control in user", `{"items":[{"verb":"get","user":{"username":"a\u0000"}}]}`, ErrInvalid, 0, "actor.id", "control"},
		{"long auditID", `{"items":[{"verb":"get","auditID":"` + strings.Repeat("a", 300) + `"}]}`, ErrInvalid, 0, "id", "longer"},
		{"huge event", `{"items":[{"verb":"get","userAgent":"` + strings.Repeat("a", MaxEventBytes) + `"}]}`, ErrTooLarge, 0, "", "bytes in canonical form, over the limit of " + strconv.Itoa(MaxEventBytes-serverReserve) + " (" + strconv.Itoa(MaxEventBytes) + " once the server's fields are added)"},
		{"too many", `{"items":[` + strings.Repeat(`{"verb":"get"},`, MaxEvents) + `{"verb":"get"}]}`, ErrTooLarge, -1, "", "more than 10000"},
		{"too big", `{"items":[{"verb":"get","userAgent":"` + strings.Repeat("a", MaxRequestBytes) + `"}]}`, ErrTooLarge, -1, "", "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromKubernetes([]byte(tt.body))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if !errors.Is(err, tt.kind) || e.Position != tt.pos || e.Field != tt.field || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("got %q (pos %d, field %q), want kind %v pos %d field %q containing %q", err, e.Position, e.Field, tt.kind, tt.pos, tt.field, tt.msg)
			}
		})
	}
}
