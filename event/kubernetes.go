package event

// FromKubernetes maps kube-apiserver's audit webhook body (an audit.k8s.io/v1
// EventList) to events (DESIGN section 6): user.username -> actor.id (type
// "user", or "serviceaccount" for system:serviceaccount:*), sourceIPs[0] ->
// actor.ip, "k8s."+verb -> action, objectRef -> resource (type = resource
// [/subresource], id = namespace/name), responseStatus.code -> outcome
// (1xx/2xx success, 401/403 denied, others failure, none unknown),
// auditID -> id, stageTimestamp -> time, source = "kube-apiserver", and
// sourceIPs, userAgent, stage, requestURI, code in metadata. Each element is
// validated like a writer's event; errors are *Error with its position.
func FromKubernetes(body []byte) ([]Event, error) { panic("unimplemented") }
