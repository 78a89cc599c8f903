package alert

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"indelible.dev/internal/tlogtest"
)

// alertmanagerBin returns the Alertmanager binary (Debian's
// prometheus-alertmanager), skipping when it is missing, but failing under
// CI=true, where .ci/run installs it.
func alertmanagerBin(t *testing.T) string {
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("prometheus-alertmanager is not installed (.ci/run installs it): CI=true does not skip")
	}
	t.Skip("prometheus-alertmanager not installed (apt-get install prometheus-alertmanager)")
	return ""
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// amNotification is the part of Alertmanager's webhook payload checked.
type amNotification struct {
	Status      string            `json:"status"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
	} `json:"alerts"`
}

// TestAlertmanager: a real Alertmanager, started on a loopback port with a
// webhook receiver, receives our firings with the contract's labels and
// annotations, and groups the two groups' firings of one rule into one
// notification (route group_by: [alertname]).
func TestAlertmanager(t *testing.T) {
	bin := alertmanagerBin(t)
	var mu sync.Mutex
	var notes []amNotification
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var n amNotification
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("alertmanager sent %s: %v", b, err)
		}
		mu.Lock()
		notes = append(notes, n)
		mu.Unlock()
	}))
	defer recv.Close()

	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 2s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s/am
`, recv.URL)
	os.WriteFile(filepath.Join(dir, "am.yml"), []byte(cfg), 0o600)
	port := freePort(t)
	am := exec.Command(bin, "--config.file="+filepath.Join(dir, "am.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port, "--cluster.listen-address=")
	out := &syncBuf{}
	am.Stdout, am.Stderr = out, out
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { am.Process.Kill(); am.Wait() })
	amURL := "http://127.0.0.1:" + port
	tlogtest.Eventually(t, 20*time.Second, "alertmanager ready", func() (bool, string) {
		resp, err := http.Get(amURL + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, out.String()
	})

	rs, err := Parse(filepath.Join(dir, "rules.yaml"), []byte(fmt.Sprintf(`
notifiers:
  - {name: am, type: alertmanager, url: %q}
rules:
  - name: burst
    match: {action: secret.read, outcome: denied}
    threshold: {count: 3, window: 5m}
    group_by: [actor.id]
    cooldown: 30m
    severity: high
    notify: [am]
`, amURL)))
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, Config{Rules: rs, ConsoleURL: "http://console.example/"})
	s.append(denied("alice"), denied("bob"), denied("alice"), denied("bob"), denied("alice"), denied("bob"))
	fired := s.waitAlerts(ActionFired, 2)
	var got amNotification
	tlogtest.Eventually(t, 30*time.Second, "alertmanager notification", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range notes {
			if len(n.Alerts) == 2 {
				got = n
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v\n%s", notes, out.String())
	})
	if got.Status != "firing" || got.GroupLabels["alertname"] != "burst" || len(got.GroupLabels) != 1 {
		t.Fatalf("notification %+v", got)
	}
	var groups []string
	for _, a := range got.Alerts {
		l := a.Labels
		if l["alertname"] != "burst" || l["severity"] != "high" || l["origin"] != s.log.Origin() || a.Status != "firing" {
			t.Fatalf("labels %v", l)
		}
		groups = append(groups, l["group"])
		idx := a.Annotations["alert_index"]
		ok := false
		for _, f := range fired {
			var md Metadata
			json.Unmarshal(f.Event.Metadata, &md)
			if strconv.FormatInt(f.Index, 10) == idx && md.Group == l["group"] {
				ok = true
				ev := make([]string, len(md.Evidence))
				for i, x := range md.Evidence {
					ev[i] = strconv.FormatInt(x, 10)
				}
				if a.Annotations["evidence"] != strings.Join(ev, ",") || a.GeneratorURL != "http://console.example/#/events/"+idx {
					t.Fatalf("annotations %v, generatorURL %q", a.Annotations, a.GeneratorURL)
				}
			}
		}
		if !ok || a.Annotations["summary"] == "" {
			t.Fatalf("alert %+v matches no firing %v", a, fired)
		}
	}
	slices.Sort(groups)
	if !slices.Equal(groups, []string{"alice", "bob"}) {
		t.Fatalf("groups %q", groups)
	}
}
