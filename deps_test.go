// Package indelible_test enforces the dependency rules of DESIGN.md section
// 4 on the whole module, from the output of `go list -deps -json`.
package indelible_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
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

// tlogAllowedModules are the only modules (besides the standard library and
// tlog itself) that tlog may depend on, even indirectly: it is pure math and
// formats.
var tlogAllowedModules = []string{"golang.org/x/mod", "golang.org/x/crypto", "github.com/transparency-dev/merkle"}

// forbidden lists, for layers of DESIGN.md's import table
// (tlog <- {ledger, witness} <- httpapi <- cmd), the packages of the module
// each may NOT depend on, directly or not. (tlog may depend on no other
// package of the module: its own rule below covers that.)
var forbidden = map[string][]string{
	module + "/ledger":  {module + "/witness", module + "/httpapi", module + "/cmd"},
	module + "/witness": {module + "/ledger", module + "/httpapi", module + "/cmd"},
	module + "/httpapi": {module + "/cmd"},
}

// checkDeps returns every violation of the dependency rules in pkgs (all
// packages of the module and their dependencies, keyed by import path):
//   - pebble is imported only by ledger/ and witness/;
//   - echo is imported only by httpapi/;
//   - ledger and witness never depend on each other, and no layer depends
//     on one above it;
//   - tlog depends only on the standard library, x/mod, x/crypto and
//     transparency-dev/merkle.
func checkDeps(pkgs map[string]*goPackage) []string {
	var bad []string
	for _, p := range pkgs {
		if !ours(p.ImportPath) {
			continue
		}
		for _, imp := range p.Imports {
			if under(imp, "github.com/cockroachdb/pebble") {
				if !under(p.ImportPath, module+"/ledger") && !under(p.ImportPath, module+"/witness") {
					bad = append(bad, fmt.Sprintf("%s imports %s: pebble belongs to ledger/ and witness/ only", p.ImportPath, imp))
				}
			}
			if under(imp, "github.com/labstack/echo") {
				if !under(p.ImportPath, module+"/httpapi") {
					bad = append(bad, fmt.Sprintf("%s imports %s: echo belongs to httpapi/ only", p.ImportPath, imp))
				}
			}
		}
		for layer, no := range forbidden {
			if !under(p.ImportPath, layer) {
				continue
			}
			for _, dep := range p.Deps {
				for _, f := range no {
					if under(dep, f) {
						bad = append(bad, fmt.Sprintf("%s depends on %s, which it must not", p.ImportPath, dep))
					}
				}
			}
		}
		if under(p.ImportPath, module+"/tlog") {
			for _, dep := range p.Deps {
				d := pkgs[dep]
				switch {
				case d == nil:
					bad = append(bad, fmt.Sprintf("%s depends on %s, which go list did not describe", p.ImportPath, dep))
				case d.Standard, under(dep, module+"/tlog"):
				case d.Module != nil && slices.Contains(tlogAllowedModules, d.Module.Path):
				default:
					bad = append(bad, fmt.Sprintf("%s depends on %s: tlog may use only the standard library, %s", p.ImportPath, dep, strings.Join(tlogAllowedModules, ", ")))
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
	pkgs := map[string]*goPackage{
		"fmt":                                 std("fmt"),
		"golang.org/x/mod/sumdb/tlog":         mod("golang.org/x/mod/sumdb/tlog", "golang.org/x/mod"),
		"github.com/cockroachdb/pebble/v2":    mod("github.com/cockroachdb/pebble/v2", "github.com/cockroachdb/pebble/v2"),
		"github.com/labstack/echo/v4":         mod("github.com/labstack/echo/v4", "github.com/labstack/echo/v4"),
		"github.com/transparency-dev/tessera": mod("github.com/transparency-dev/tessera", "github.com/transparency-dev/tessera"),
		module + "/tlog": {ImportPath: module + "/tlog", Imports: []string{"fmt", "github.com/transparency-dev/tessera"},
			Deps: []string{"fmt", "golang.org/x/mod/sumdb/tlog", "github.com/transparency-dev/tessera"}},
		module + "/ledger": {ImportPath: module + "/ledger", Imports: []string{"github.com/cockroachdb/pebble/v2", module + "/witness"},
			Deps: []string{"github.com/cockroachdb/pebble/v2", module + "/witness"}},
		module + "/witness": {ImportPath: module + "/witness", Imports: []string{"github.com/cockroachdb/pebble/v2"},
			Deps: []string{"github.com/cockroachdb/pebble/v2", module + "/ledger"}},
		module + "/httpapi": {ImportPath: module + "/httpapi", Imports: []string{"github.com/labstack/echo/v4", "github.com/cockroachdb/pebble/v2"},
			Deps: []string{"github.com/labstack/echo/v4", "github.com/cockroachdb/pebble/v2", module + "/cmd/indelible"}},
		module + "/cmd/indelible": {ImportPath: module + "/cmd/indelible", Imports: []string{"github.com/labstack/echo/v4"},
			Deps: []string{"github.com/labstack/echo/v4"}},
	}
	got := checkDeps(pkgs)
	for _, want := range []string{
		"indelible.dev/tlog depends on github.com/transparency-dev/tessera: tlog may use only",
		"indelible.dev/ledger depends on indelible.dev/witness",
		"indelible.dev/witness depends on indelible.dev/ledger",
		"indelible.dev/httpapi imports github.com/cockroachdb/pebble/v2: pebble belongs to ledger/ and witness/ only",
		"indelible.dev/httpapi depends on indelible.dev/cmd/indelible",
		"indelible.dev/cmd/indelible imports github.com/labstack/echo/v4: echo belongs to httpapi/ only",
	} {
		found := false
		for _, v := range got {
			found = found || strings.HasPrefix(v, want)
		}
		if !found {
			t.Errorf("checkDeps missed %q; it reported:\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 6 {
		t.Errorf("checkDeps reported %d violations, want 6:\n%s", len(got), strings.Join(got, "\n"))
	}
}
