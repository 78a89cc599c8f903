package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// The deployment files of docs/ha.md (deploy/): the systemd unit and the Helm
// chart. Both are checked by the tools that read them (systemd-analyze, helm
// template) and against the flags serve really accepts.

const (
	deployDir   = "../../deploy"
	systemdUnit = deployDir + "/systemd/indelible.service"
	helmChart   = deployDir + "/helm/indelible"
	// helmModule is helm, run as a Go tool (go run ...@version): the module
	// proxy serves it, so CI needs no other package source.
	helmModule = "helm.sh/helm/v4/cmd/helm@v4.3.2"
)

// needTool returns the path of an external program, skipping the test when
// it is missing on a developer's machine; with CI=true a missing tool fails.
func needTool(t *testing.T, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true: %s)", name, install)
	}
	t.Skipf("%s is missing (%s)", name, install)
	return ""
}

// serveFlagNames returns the long flags indelible serve accepts.
func serveFlagNames(t *testing.T) map[string]bool {
	t.Helper()
	cmd, _, err := rootCmd.Find([]string{"serve"})
	if err != nil || cmd.Name() != "serve" {
		t.Fatalf("no serve command: %v", err)
	}
	names := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
	return names
}

// flagsIn returns the --flags of a command line (the part before any "=").
func flagsIn(args []string) []string {
	var flags []string
	for _, a := range args {
		if strings.HasPrefix(a, "--") {
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			flags = append(flags, name)
		}
	}
	return flags
}

// unitExecStart returns the words of the unit's ExecStart= line (its
// continuation lines joined).
func unitExecStart(t *testing.T, unit []byte) []string {
	t.Helper()
	var line strings.Builder
	in := false
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(s, "ExecStart=") {
			in = true
			s = strings.TrimPrefix(s, "ExecStart=")
		}
		if !in {
			continue
		}
		more := strings.HasSuffix(s, `\`)
		line.WriteString(strings.TrimSuffix(s, `\`) + " ")
		if !more {
			break
		}
	}
	if line.Len() == 0 {
		t.Fatal("the unit has no ExecStart=")
	}
	return strings.Fields(line.String())
}

// unitSettings returns the unit's Key=value settings, each key's values in
// order.
func unitSettings(unit []byte) map[string][]string {
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' || s[0] == '[' || s[0] == '-' {
			continue
		}
		if k, v, ok := strings.Cut(s, "="); ok && !strings.Contains(k, " ") {
			m[k] = append(m[k], v)
		}
	}
	return m
}

// TestSystemdUnit checks deploy/systemd/indelible.service with
// systemd-analyze verify (any warning fails), its offline security score,
// the hardening and key handling docs/ha.md describes, and that ExecStart
// passes only flags serve accepts.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile(systemdUnit)
	if err != nil {
		t.Fatal(err)
	}
	set := unitSettings(unit)
	for k, want := range map[string]string{
		"DynamicUser":           "yes",
		"ProtectSystem":         "strict",
		"NoNewPrivileges":       "yes",
		"StateDirectory":        "indelible",
		"RuntimeDirectory":      "indelible",
		"Restart":               "on-failure",
		"EnvironmentFile":       "/etc/indelible/indelible.env",
		"CapabilityBoundingSet": "",
	} {
		if got := set[k]; !slices.Contains(got, want) {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	for _, cred := range []string{"log.key:/etc/indelible/log.key", "master.key:/etc/indelible/master.key"} {
		if !slices.Contains(set["LoadCredential"], cred) {
			t.Errorf("LoadCredential=%q, want %q among them", set["LoadCredential"], cred)
		}
	}
	args := unitExecStart(t, unit)
	if args[0] != "/usr/local/bin/indelible" || args[1] != "serve" {
		t.Fatalf("ExecStart=%q: want /usr/local/bin/indelible serve ...", args)
	}
	flags := serveFlagNames(t)
	for _, f := range flagsIn(args) {
		if !flags[f] {
			t.Errorf("ExecStart passes --%s, which serve does not accept", f)
		}
	}
	for _, want := range []string{"--key", "--master-key", "--data", "--bucket", "--lease", "--node", "--advertise"} {
		if !slices.Contains(args, want) {
			t.Errorf("ExecStart=%q lacks %s", args, want)
		}
	}
	// The master key comes from the credential; the log key from the tmpfs
	// copy ExecStartPre makes of its credential.
	if i := slices.Index(args, "--master-key"); i < 0 || args[i+1] != "%d/master.key" {
		t.Errorf("--master-key is not the credential %%d/master.key: %q", args)
	}
	if i := slices.Index(args, "--key"); i < 0 || args[i+1] != "%t/indelible/log.key" ||
		!slices.Contains(set["ExecStartPre"], "/usr/bin/install -m 0400 %d/log.key %t/indelible/log.key") {
		t.Errorf("--key is not the runtime copy of the credential log.key: %q, ExecStartPre=%q", args, set["ExecStartPre"])
	}

	analyze := needTool(t, "systemd-analyze", "apt-get install systemd")
	// verify wants the executable to exist: point ExecStart at a real one.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "indelible.service")
	if err := os.WriteFile(file, bytes.ReplaceAll(unit, []byte("/usr/local/bin/indelible"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(analyze, "verify", file)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
	// The offline exposure score (0 safest .. 10): at most 2.0.
	out, err := exec.Command(analyze, "security", "--offline=true", "--threshold=20", file).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0 (%v):\n%s", err, out)
	}
}

// TestSystemdVerifyCatches makes sure the verification above can fail: a
// misspelt option is reported.
func TestSystemdVerifyCatches(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "apt-get install systemd")
	file := filepath.Join(t.TempDir(), "bad.service")
	if err := os.WriteFile(file, []byte("[Service]\nExecStart=/bin/sh -c true\nProtectSystem=strictly\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(analyze, "verify", file).CombinedOutput()
	if !bytes.Contains(out, []byte("bad.service:3:")) {
		t.Fatalf("systemd-analyze verify did not report a bad ProtectSystem=: %s", out)
	}
}

// helmTemplate renders the chart with helm template, helm being run from the
// module proxy (go run) unless a helm binary is on the PATH.
func helmTemplate(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	var cmd *exec.Cmd
	if p, err := exec.LookPath("helm"); err == nil && os.Getenv("INDELIBLE_HELM_GO_RUN") == "" {
		cmd = exec.Command(p, append([]string{"template"}, args...)...)
	} else {
		goTool := needTool(t, "go", "the Go toolchain")
		cmd = exec.Command(goTool, append([]string{"run", helmModule, "template"}, args...)...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("helm template %q: %v", args, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return out, errors.New(err.Error() + ": " + stderr.String())
	}
	return out, nil
}

// k8sObject is the part of a rendered manifest the test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas    int    `yaml:"replicas"`
		ServiceName string `yaml:"serviceName"`
		ClusterIP   string `yaml:"clusterIP"`
		Template    struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		FSGroup      int  `yaml:"fsGroup"`
	} `yaml:"securityContext"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName  string `yaml:"secretName"`
			DefaultMode int    `yaml:"defaultMode"`
		} `yaml:"secret"`
		EmptyDir *struct {
			Medium string `yaml:"medium"`
		} `yaml:"emptyDir"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Args    []string `yaml:"args"`
	Command []string `yaml:"command"`
	Env     []struct {
		Name      string `yaml:"name"`
		ValueFrom struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	ReadinessProbe probe `yaml:"readinessProbe"`
	LivenessProbe  probe `yaml:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// renderedObjects splits helm template's output into objects by kind/name.
func renderedObjects(t *testing.T, out []byte) map[string]k8sObject {
	t.Helper()
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered manifests: %v\n%s", err, out)
		}
		if o.Kind != "" {
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	return objs
}

// TestHelmChart renders deploy/helm/indelible with helm template and checks
// the manifests: a StatefulSet of the asked replicas whose serve arguments
// are flags serve accepts (--store from a Secret, --bucket, --lease, --node
// from the pod name, --advertise through the headless Service), probes on
// /readyz and /healthz, the keys from a Secret mounted 0400, the Services.
func TestHelmChart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: helm template builds helm")
	}
	bucket := "s3://audit-log?endpoint=https://s3.example.net&region=eu-west-1&path_style=true"
	out, err := helmTemplate(t, "audit", helmChart, "--namespace", "ledger", "--set", "image.repository=registry.example/indelible",
		"--set", "replicas=3", "--set", "bucket.url="+strings.ReplaceAll(bucket, ",", `\,`),
		"--set", "bucket.credentialsSecret=audit-s3", "--set", "lease=7s")
	if err != nil {
		t.Fatal(err)
	}
	objs := renderedObjects(t, out)
	sts, ok := objs["StatefulSet/audit-indelible"]
	if !ok {
		t.Fatalf("no StatefulSet audit-indelible in:\n%s", out)
	}
	if sts.Spec.Replicas != 3 || sts.Spec.ServiceName != "audit-indelible-nodes" {
		t.Errorf("StatefulSet: replicas %d, serviceName %q", sts.Spec.Replicas, sts.Spec.ServiceName)
	}
	if svc := objs["Service/audit-indelible-nodes"]; svc.Spec.ClusterIP != "None" {
		t.Errorf("the headless Service audit-indelible-nodes is missing or not headless: %+v", svc)
	}
	if _, ok := objs["Service/audit-indelible"]; !ok {
		t.Error("no client Service audit-indelible")
	}
	pod := sts.Spec.Template.Spec
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.FSGroup == 0 {
		t.Errorf("pod security context: %+v", pod.SecurityContext)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("containers: %+v", pod.Containers)
	}
	c := pod.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("args %q: want serve ...", c.Args)
	}
	flags := serveFlagNames(t)
	for _, f := range flagsIn(c.Args) {
		if !flags[f] {
			t.Errorf("the chart passes --%s, which serve does not accept", f)
		}
	}
	for _, want := range []string{
		"--bucket=" + bucket,
		"--lease=7s",
		"--node=$(POD_NAME)",
		"--advertise=http://$(POD_NAME).audit-indelible-nodes.$(POD_NAMESPACE).svc:8080",
		"--key=/run/indelible/log.key",
		"--master-key=/etc/indelible/keys/master.key",
	} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "field:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	for k, v := range map[string]string{
		"INDELIBLE_STORE": "secret:indelible-store/url",
		"POD_NAME":        "field:metadata.name",
		"POD_NAMESPACE":   "field:metadata.namespace",
	} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v, liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if c.Resources.Requests["cpu"] == "" || c.Resources.Limits["memory"] == "" {
		t.Errorf("resources: %+v", c.Resources)
	}
	// The keys: a Secret volume mode 0400, mounted read-only; the log key
	// copied by the init container into a memory-backed emptyDir.
	vols := map[string]int{}
	for i, v := range pod.Volumes {
		vols[v.Name] = i
	}
	keys, ok := vols["keys"]
	if !ok || pod.Volumes[keys].Secret == nil || pod.Volumes[keys].Secret.SecretName != "indelible-keys" || pod.Volumes[keys].Secret.DefaultMode != 0o400 {
		t.Errorf("volume keys: want Secret indelible-keys with defaultMode 0400, got %+v", pod.Volumes)
	}
	if lk, ok := vols["log-key"]; !ok || pod.Volumes[lk].EmptyDir == nil || pod.Volumes[lk].EmptyDir.Medium != "Memory" {
		t.Errorf("volume log-key: want a Memory emptyDir, got %+v", pod.Volumes)
	}
	mounted := func(c container, vol, path string, ro bool) bool {
		return slices.ContainsFunc(c.VolumeMounts, func(m struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			ReadOnly  bool   `yaml:"readOnly"`
		}) bool {
			return m.Name == vol && m.MountPath == path && m.ReadOnly == ro
		})
	}
	if !mounted(c, "keys", "/etc/indelible/keys", true) || !mounted(c, "log-key", "/run/indelible", false) {
		t.Errorf("mounts of the keys: %+v", c.VolumeMounts)
	}
	if len(pod.InitContainers) != 1 || !mounted(pod.InitContainers[0], "keys", "/secrets", true) ||
		!strings.Contains(strings.Join(pod.InitContainers[0].Command, " "), "cp /secrets/log.key /keys/log.key") {
		t.Errorf("init container copying the log key: %+v", pod.InitContainers)
	}
	if !bytes.Contains(out, []byte("name: audit-s3")) {
		t.Error("the bucket's credentials Secret audit-s3 is not used")
	}

	// A value that would start a node without its keys is refused.
	if _, err := helmTemplate(t, "audit", helmChart, "--set", "image.repository=x", "--set", "keys.secretName="); err == nil ||
		!regexp.MustCompile(`keys\.secretName`).MatchString(err.Error()) {
		t.Errorf("helm template with no keys Secret: %v, want an error naming keys.secretName", err)
	}
	if _, err := helmTemplate(t, "audit", helmChart); err == nil || !strings.Contains(err.Error(), "image.repository") {
		t.Errorf("helm template with no image: %v, want an error naming image.repository", err)
	}
}
