package event

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// FromKubernetes maps kube-apiserver's audit webhook body (an audit.k8s.io/v1
// EventList) to events (DESIGN section 6): user.username -> actor.id (type
// "user", or "serviceaccount" for system:serviceaccount:*), sourceIPs[0] ->
// actor.ip, "k8s."+verb -> action, objectRef -> resource (type = resource
// [/subresource], id = namespace/name), responseStatus.code -> outcome
// (1xx/2xx success, 401/403 denied, others failure, none unknown),
// auditID -> id, stageTimestamp -> time, source = "kube-apiserver", and
// sourceIPs, userAgent, stage, requestURI, code in metadata. Each element is
// validated like a writer's event; errors are *Error with its position.
//
// Details (docs/kubernetes.md):
//   - resource.id is "namespace/name" for a namespaced object, "name" for a
//     cluster-scoped one, "namespace/" for a collection in a namespace
//     (list, watch, create), and absent for a cluster-wide collection; a
//     request with no objectRef (a non-resource URL such as /healthz) has
//     no resource.
//   - id is the auditID for the ResponseComplete stage (and when no stage is
//     given), and "<auditID>/<stage>" for the other stages: one request
//     yields several events (a watch or an exec has ResponseStarted and then
//     ResponseComplete), and with the bare auditID the later ones would be
//     taken for retries of the first and dropped. A retried webhook batch
//     still maps to the same ids, so it stores nothing twice.
//   - time is stageTimestamp, else requestReceivedTimestamp.
//   - metadata holds, when present: auditID, stage, level, requestURI,
//     userAgent, sourceIPs, code, apiGroup, apiVersion, groups (of the
//     user), impersonatedUser, statusReason, statusMessage, and annotations
//     (such as authorization.k8s.io/decision and reason). Request and
//     response bodies (requestObject, responseObject) are never copied.
//
// The body is limited like a POST /v1/events request (MaxRequestBytes,
// MaxEvents); apiVersion, if given, must be audit.k8s.io/v1, and kind, if
// given, EventList.
func FromKubernetes(body []byte) ([]Event, error) {
	if len(body) > MaxRequestBytes {
		return nil, &Error{Position: -1, Msg: "body is over " + strconv.Itoa(MaxRequestBytes) + " bytes", Kind: ErrTooLarge}
	}
	if len(bytes.TrimLeft(body, " \t\r\n")) == 0 {
		return nil, &Error{Position: -1, Msg: "empty body", Kind: ErrInvalid}
	}
	var list struct {
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, &Error{Position: -1, Msg: "not an audit.k8s.io/v1 EventList: " + err.Error(), Kind: ErrInvalid}
	}
	if list.APIVersion != "" && list.APIVersion != "audit.k8s.io/v1" {
		return nil, &Error{Position: -1, Field: "apiVersion", Msg: "must be audit.k8s.io/v1, not " + strconv.Quote(list.APIVersion), Kind: ErrInvalid}
	}
	if list.Kind != "" && list.Kind != "EventList" {
		return nil, &Error{Position: -1, Field: "kind", Msg: "must be EventList, not " + strconv.Quote(list.Kind), Kind: ErrInvalid}
	}
	if len(list.Items) == 0 {
		return nil, &Error{Position: -1, Field: "items", Msg: "no events", Kind: ErrInvalid}
	}
	if len(list.Items) > MaxEvents {
		return nil, tooMany()
	}
	evs := make([]Event, 0, len(list.Items))
	for i, raw := range list.Items {
		var k k8sEvent
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, &Error{Position: i, Msg: "not an audit event: " + err.Error(), Kind: ErrInvalid}
		}
		e, err := k.event(i)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// k8sEvent is the part of an audit.k8s.io/v1 Event the mapping reads.
type k8sEvent struct {
	Level            string `json:"level"`
	AuditID          string `json:"auditID"`
	Stage            string `json:"stage"`
	RequestURI       string `json:"requestURI"`
	Verb             string `json:"verb"`
	User             k8sUser
	ImpersonatedUser *k8sUser `json:"impersonatedUser"`
	SourceIPs        []string `json:"sourceIPs"`
	UserAgent        string   `json:"userAgent"`
	ObjectRef        *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		APIVersion  string `json:"apiVersion"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code    *int   `json:"code"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"responseStatus"`
	RequestReceivedTimestamp string            `json:"requestReceivedTimestamp"`
	StageTimestamp           string            `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations"`
}

type k8sUser struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// event maps k, the pos-th item, and validates the result.
func (k *k8sEvent) event(pos int) (Event, *Error) {
	bad := func(field, msg string) (Event, *Error) {
		return Event{}, &Error{Position: pos, Field: field, Msg: msg, Kind: ErrInvalid}
	}
	if k.Verb == "" {
		return bad("verb", "is required")
	}
	e := Event{
		ID:     k.AuditID,
		Action: "k8s." + k.Verb,
		Source: "kube-apiserver",
	}
	if k.AuditID != "" && k.Stage != "" && k.Stage != "ResponseComplete" {
		e.ID = k.AuditID + "/" + k.Stage
	}
	if u := k.User.Username; u != "" {
		e.Actor = &Actor{ID: u, Type: "user"}
		if strings.HasPrefix(u, "system:serviceaccount:") {
			e.Actor.Type = "serviceaccount"
		}
	}
	if len(k.SourceIPs) > 0 && k.SourceIPs[0] != "" {
		if e.Actor == nil {
			e.Actor = &Actor{}
		}
		e.Actor.IP = k.SourceIPs[0]
	}
	meta := map[string]any{}
	if r := k.ObjectRef; r != nil {
		res := Resource{Type: r.Resource}
		if r.Subresource != "" {
			res.Type += "/" + r.Subresource
		}
		switch {
		case r.Namespace != "":
			res.ID = r.Namespace + "/" + r.Name
		default:
			res.ID = r.Name
		}
		if res != (Resource{}) {
			e.Resource = &res
		}
		set(meta, "apiGroup", r.APIGroup)
		set(meta, "apiVersion", r.APIVersion)
	}
	e.Outcome = OutcomeUnknown
	if st := k.ResponseStatus; st != nil {
		if st.Code != nil {
			c := *st.Code
			switch {
			case c >= 100 && c < 300:
				e.Outcome = OutcomeSuccess
			case c == 401 || c == 403:
				e.Outcome = OutcomeDenied
			default:
				e.Outcome = OutcomeFailure
			}
			meta["code"] = c
		}
		set(meta, "statusReason", st.Reason)
		set(meta, "statusMessage", st.Message)
	}
	ts, field := k.StageTimestamp, "stageTimestamp"
	if ts == "" {
		ts, field = k.RequestReceivedTimestamp, "requestReceivedTimestamp"
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return bad(field, "must be an RFC 3339 time")
		}
		e.Time = t.UTC()
	}
	set(meta, "auditID", k.AuditID)
	set(meta, "stage", k.Stage)
	set(meta, "level", k.Level)
	set(meta, "requestURI", k.RequestURI)
	set(meta, "userAgent", k.UserAgent)
	if len(k.SourceIPs) > 0 {
		meta["sourceIPs"] = k.SourceIPs
	}
	if len(k.User.Groups) > 0 {
		meta["groups"] = k.User.Groups
	}
	if u := k.ImpersonatedUser; u != nil && u.Username != "" {
		meta["impersonatedUser"] = u.Username
	}
	if len(k.Annotations) > 0 {
		meta["annotations"] = k.Annotations
	}
	// encoding/json writes valid JSON here (it replaces invalid UTF-8);
	// metadataField makes it canonical and checks its depth and keys.
	mb, err := json.Marshal(meta)
	if err != nil {
		return bad("", "cannot encode metadata: "+err.Error())
	}
	md, merr := metadataField(&scanner{b: mb}, pos)
	if merr != nil {
		return Event{}, merr
	}
	e.Metadata = md
	if _, err := check(&e, pos); err != nil {
		return Event{}, err
	}
	if err := checkWriterSize(&e, pos); err != nil {
		return Event{}, err
	}
	return e, nil
}

func set(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}
