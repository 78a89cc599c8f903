// Package indelible_test enforces the dependency rules of docs/design.md
// ("Layers") on the whole module, from the output of `go list -deps -json`.
package indelible_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

const module = "indelible.dev"

// goPackage is the part of `go list -json` output the rules need.
type goPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string // direct imports of the non-test Go files
	Deps       []string // transitive dependencies of the non-test Go files
	Module     *struct{ Path string }
}

// under reports whether import path p is the package dir or below it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// ours reports whether p is one of the module's own packages.
func ours(p string) bool { return under(p, module) }

// pureAllowedModules are the only modules (besides the standard library and
// the module itself) that the pure packages, and the client outsiders embed,
// may depend on, even indirectly.
var pureAllowedModules = []string{"golang.org/x/mod", "golang.org/x/crypto", "github.com/transparency-dev/merkle"}

// clientAllowedModules adds what the client may use on top of the pure set.
var clientAllowedModules = append([]string{"golang.org/x/sync"}, pureAllowedModules...)

// layers gives, for each package of the module (and the packages below it),
// the packages of the module it may depend on, directly or not, besides
// itself. It is docs/design.md's import table:
//
//	tlog, event                 pure
//	api                         pure, over event: the HTTP API's wire types
//	receipt                     over them: the public receipt verifier
//	evidence                    pure, over them (bundles; outsiders embed its verifier)
//	ledger, witness, auth, client  over them (witness gossips through client;
//	                            client verifies receipts with receipt)
//	eventstore                  over ledger (and auth): the events store
//	audited                     over eventstore: the audit policy, below HTTP
//	export                      over audited: streams events into SIEMs
//	audit                       over client: it sees what any outsider sees
//	httpapi                     over all but audit
//	cmd                         on top (with its helpers in cmd/indelible/internal)
//
// so ledger and witness never depend on each other, ledger never on eventstore,
// audit never on ledger or eventstore. A package of the module with no entry is
// itself a violation: a new package gets its rule when it is created.
var layers = map[string][]string{
	"tlog":       {},
	"event":      {"tlog"},
	"ledger":     {"tlog", "event", "internal/atomicfile"},
	"witness":    {"tlog", "event", "client", "api", "receipt", "internal/atomicfile"},
	"auth":       {"tlog", "event", "internal/atomicfile"},
	"api":        {"tlog", "event"}, // event for Actor and Resource, and the outcomes
	"client":     {"tlog", "event", "api", "receipt"},
	"receipt":    {"tlog", "event"},
	"eventstore": {"tlog", "event", "api", "ledger", "auth", "evidence", "internal/atomicfile"},
	"evidence":   {"tlog", "event", "api"}, // evidence bundles: public, pure (a verifier outsiders embed); api: the record's encoder
	"mirror":     {"tlog", "event", "ledger", "internal/atomicfile"},
	"audited":    {"tlog", "event", "api", "ledger", "auth", "eventstore", "internal/atomicfile", "evidence"},
	"audit":      {"tlog", "event", "client", "api", "receipt", "internal/tlogtest", "internal/atomicfile"}, // tlogtest: for audit/audittest only, see testOnly
	"httpapi":    {"tlog", "event", "ledger", "witness", "auth", "client", "api", "receipt", "eventstore", "audited", "otlp", "internal/atomicfile", "evidence", "alert"},
	"cmd":        {"tlog", "event", "ledger", "mirror", "export", "witness", "auth", "client", "api", "eventstore", "audited", "audit", "httpapi", "otlp", "receipt", "internal/atomicfile", "evidence", "alert", "cluster"},
	"otlp":       {"tlog", "event"},
	"cluster":    {},                                                                                                     // the lease in PostgreSQL (pgx): which node is active, the epoch bump at takeover
	"alert":      {"tlog", "event", "api", "ledger", "eventstore", "auth", "internal/atomicfile", "evidence"},            // evidence: through eventstore
	"export":     {"tlog", "event", "api", "ledger", "auth", "eventstore", "audited", "internal/atomicfile", "evidence"}, // SIEM exports: over audited
	// The commands' own logic lives in cmd/indelible/internal/..., under the
	// cmd layer: Go's nested internal rule keeps everything else out.
	// Atomic state files, for the stores and the auditor.
	"internal/atomicfile": {},
	"internal/tlogtest":   {},         // not even tlog: tlog's own tests import it
	"internal/s3test":     {},         // the S3 server process of the mirror's tests
	"internal/pgtest":     {"ledger"}, // the PostgreSQL cluster of the tests (over ledger/kv/pgkv)
	"internal/nettest":    {},         // a TCP proxy a test can blackhole (partitions from PostgreSQL)
	// A ledger and events layer in a test's directory, for the tests above eventstore.
	"internal/storetest": {"tlog", "event", "api", "ledger", "auth", "eventstore", "internal/atomicfile", "evidence", "internal/tlogtest"},
}

// testOnly are packages only tests and test-helper packages (whose name
// ends in "test", like audit/audittest) may import. Test imports are not in
// go list's Imports, so any importer seen here is shipped code.
var testOnly = []string{"internal/tlogtest", "internal/s3test", "internal/pgtest", "internal/nettest", "internal/storetest"}

// moduleRules restricts the external modules some packages may depend on.
var moduleRules = map[string][]string{
	"tlog":   pureAllowedModules,
	"event":  pureAllowedModules,
	"client": clientAllowedModules,
	// api is the wire types the client and its users share: pure.
	"api":      pureAllowedModules,
	"evidence": pureAllowedModules,
	// receipt is what outsiders embed to verify: no more than the pure set.
	"receipt": pureAllowedModules,
}

// layerOf returns the layers entry p falls under (the longest match), or ""
// if none does.
func layerOf(p string) string {
	best := ""
	for l := range layers {
		if under(p, module+"/"+l) && len(l) > len(best) {
			best = l
		}
	}
	return best
}

// checkDeps returns every violation of the dependency rules in pkgs (all
// packages of the module and their dependencies, keyed by import path):
//   - each package of the module depends only on the packages its layer
//     allows (layers), and every package has a layer;
//   - test-only packages are imported only by test-helper packages;
//   - pebble is imported only by ledger/ and witness/, echo only by
//     httpapi/, pgx only by ledger/kv/pgkv, cluster and internal/pgtest;
//   - the pure packages and the client depend only on the standard library
//     and the modules moduleRules allows them.
func checkDeps(pkgs map[string]*goPackage) []string {
	var bad []string
	for _, p := range pkgs {
		if !ours(p.ImportPath) || p.ImportPath == module {
			continue
		}
		layer := layerOf(p.ImportPath)
		if layer == "" {
			bad = append(bad, fmt.Sprintf("%s has no rule: give it one in deps_test.go and docs/design.md", p.ImportPath))
			continue
		}
		for _, dep := range p.Deps {
			if !ours(dep) || under(dep, module+"/"+layer) {
				continue
			}
			ok := false
			for _, a := range layers[layer] {
				ok = ok || under(dep, module+"/"+a)
			}
			if !ok {
				bad = append(bad, fmt.Sprintf("%s depends on %s, which its layer (%s) must not", p.ImportPath, dep, layer))
			}
		}
		for _, dep := range p.Deps {
			for _, t := range testOnly {
				if under(dep, module+"/"+t) && !strings.HasSuffix(path.Base(p.ImportPath), "test") {
					bad = append(bad, fmt.Sprintf("%s depends on %s, which only tests may import", p.ImportPath, dep))
				}
			}
		}
		for _, imp := range p.Imports {
			if under(imp, "github.com/cockroachdb/pebble") && layer != "ledger" && layer != "witness" {
				bad = append(bad, fmt.Sprintf("%s imports %s: pebble belongs to ledger/ and witness/ only", p.ImportPath, imp))
			}
			if under(imp, "github.com/jackc/pgx") && !under(p.ImportPath, module+"/ledger/kv/pgkv") && !under(p.ImportPath, module+"/internal/pgtest") && layer != "cluster" {
				bad = append(bad, fmt.Sprintf("%s imports %s: pgx belongs to ledger/kv/pgkv, cluster (and internal/pgtest) only", p.ImportPath, imp))
			}
			if under(imp, "github.com/labstack/echo") && layer != "httpapi" {
				bad = append(bad, fmt.Sprintf("%s imports %s: echo belongs to httpapi/ only", p.ImportPath, imp))
			}
		}
		if allowed, ok := moduleRules[layer]; ok {
			for _, dep := range p.Deps {
				d := pkgs[dep]
				switch {
				case d == nil:
					bad = append(bad, fmt.Sprintf("%s depends on %s, which go list did not describe", p.ImportPath, dep))
				case d.Standard, ours(dep):
				case d.Module != nil && slices.Contains(allowed, d.Module.Path):
				default:
					bad = append(bad, fmt.Sprintf("%s depends on %s: %s may use only the standard library, %s", p.ImportPath, dep, layer, strings.Join(allowed, ", ")))
				}
			}
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad)
}

// goList runs `go list -e -deps -json ./...` in the module root.
func goList(t *testing.T) map[string]*goPackage {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command on PATH: %v", err)
	}
	cmd := exec.Command(goCmd, "list", "-e", "-deps", "-json=ImportPath,Standard,Imports,Deps,Module", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]*goPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(goPackage)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	return pkgs
}

// TestDependencyRules checks the module's real import graph.
func TestDependencyRules(t *testing.T) {
	pkgs := goList(t)
	for _, want := range []string{module + "/tlog", module + "/ledger"} {
		if pkgs[want] == nil {
			t.Fatalf("go list did not list %s", want)
		}
	}
	if !slices.Contains(pkgs[module+"/ledger"].Imports, "github.com/cockroachdb/pebble/v2") {
		t.Fatal("ledger does not import pebble: is go list output being read right?")
	}
	if n := pkgs["golang.org/x/mod/sumdb/note"]; n == nil || n.Module == nil || n.Module.Path != "golang.org/x/mod" {
		t.Fatal("go list did not describe tlog's dependencies with their modules")
	}
	for _, want := range []string{"client", "internal/tlogtest", "event", "eventstore", "auth"} {
		if pkgs[module+"/"+want] == nil {
			t.Errorf("go list did not list %s/%s", module, want)
		}
	}
	if len(pkgs[module+"/tlog"].Deps) < 10 {
		t.Fatalf("tlog has only %d dependencies listed", len(pkgs[module+"/tlog"].Deps))
	}
	for _, v := range checkDeps(pkgs) {
		t.Error(v)
	}
}

// TestDependencyRulesCatchViolations feeds checkDeps a module that breaks
// every rule once, to show each rule can fail.
func TestDependencyRulesCatchViolations(t *testing.T) {
	std := func(p string) *goPackage { return &goPackage{ImportPath: p, Standard: true} }
	mod := func(p, m string) *goPackage { return &goPackage{ImportPath: p, Module: &struct{ Path string }{m}} }
	// our returns package p of the module importing imps (ours are given
	// relative to the module) and depending on them and deps.
	our := func(p string, imps []string, deps ...string) *goPackage {
		g := &goPackage{ImportPath: module + "/" + p}
		for _, i := range imps {
			if !strings.Contains(i, ".") && i != "fmt" {
				i = module + "/" + i
			}
			g.Imports = append(g.Imports, i)
			g.Deps = append(g.Deps, i)
		}
		for _, d := range deps {
			if !strings.Contains(d, ".") {
				d = module + "/" + d
			}
			g.Deps = append(g.Deps, d)
		}
		return g
	}
	const (
		pebble  = "github.com/cockroachdb/pebble/v2"
		echo    = "github.com/labstack/echo/v4"
		tessera = "github.com/transparency-dev/tessera"
		cobra   = "github.com/spf13/cobra"
		pgx     = "github.com/jackc/pgx/v5"
	)
	pkgs := map[string]*goPackage{
		"fmt":                         std("fmt"),
		"golang.org/x/mod/sumdb/tlog": mod("golang.org/x/mod/sumdb/tlog", "golang.org/x/mod"),
		pebble:                        mod(pebble, pebble),
		echo:                          mod(echo, echo),
		tessera:                       mod(tessera, tessera),
		cobra:                         mod(cobra, cobra),
		pgx:                           mod(pgx, pgx),
	}
	for _, p := range []*goPackage{
		our("tlog", []string{"fmt", "golang.org/x/mod/sumdb/tlog", tessera}),
		our("event", []string{"tlog"}),
		our("ledger", []string{pebble, "witness", "eventstore", "internal/tlogtest"}),
		our("witness", []string{pebble, "ledger"}),
		our("eventstore", []string{"ledger", pebble}),
		our("ledger/kv/pgkv", []string{pgx}),
		our("ledger/kv/pebblekv", []string{pgx}),
		our("client", []string{"tlog", cobra, "httpapi"}),
		our("audit", []string{"client", "ledger"}, "eventstore"),
		our("httpapi", []string{echo, pebble, "cmd/indelible", "audit"}),
		our("cmd/indelible", []string{echo, "httpapi"}),
		our("internal/tlogtest", []string{"tlog"}),
		our("audit/audittest", []string{"internal/tlogtest"}),
		our("newpkg", []string{"tlog"}),
	} {
		pkgs[p.ImportPath] = p
	}
	want := []string{
		"indelible.dev/tlog depends on github.com/transparency-dev/tessera: tlog may use only",
		"indelible.dev/ledger depends on indelible.dev/witness, which its layer (ledger) must not",
		"indelible.dev/ledger depends on indelible.dev/eventstore, which its layer (ledger) must not",
		"indelible.dev/ledger depends on indelible.dev/internal/tlogtest, which its layer (ledger) must not",
		"indelible.dev/ledger depends on indelible.dev/internal/tlogtest, which only tests may import",
		"indelible.dev/witness depends on indelible.dev/ledger, which its layer (witness) must not",
		"indelible.dev/eventstore imports github.com/cockroachdb/pebble/v2: pebble belongs to ledger/ and witness/ only",
		"indelible.dev/ledger/kv/pebblekv imports github.com/jackc/pgx/v5: pgx belongs to ledger/kv/pgkv",
		"indelible.dev/client depends on github.com/spf13/cobra: client may use only",
		"indelible.dev/client depends on indelible.dev/httpapi, which its layer (client) must not",
		"indelible.dev/audit depends on indelible.dev/ledger, which its layer (audit) must not",
		"indelible.dev/audit depends on indelible.dev/eventstore, which its layer (audit) must not",
		"indelible.dev/httpapi imports github.com/cockroachdb/pebble/v2: pebble belongs to ledger/ and witness/ only",
		"indelible.dev/httpapi depends on indelible.dev/cmd/indelible, which its layer (httpapi) must not",
		"indelible.dev/httpapi depends on indelible.dev/audit, which its layer (httpapi) must not",
		"indelible.dev/cmd/indelible imports github.com/labstack/echo/v4: echo belongs to httpapi/ only",
		"indelible.dev/internal/tlogtest depends on indelible.dev/tlog, which its layer (internal/tlogtest) must not",
		"indelible.dev/newpkg has no rule",
	}
	got := checkDeps(pkgs)
	for _, w := range want {
		found := false
		for _, v := range got {
			found = found || strings.HasPrefix(v, w)
		}
		if !found {
			t.Errorf("checkDeps missed %q; it reported:\n%s", w, strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("checkDeps reported %d violations, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}
