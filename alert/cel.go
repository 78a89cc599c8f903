package alert

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	_ "time/tzdata" // where may name time zones; the server must not depend on the host's zoneinfo

	"cel.dev/cel-go/cel"
)

// The CEL environment of where: one variable, event, the event as a JSON
// object (its fields as GET /v1/events returns them; metadata as the
// writer sent it).
var (
	celOnce sync.Once
	celEnv  *cel.Env
	celErr  error
)

func env() (*cel.Env, error) {
	celOnce.Do(func() {
		celEnv, celErr = cel.NewEnv(cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)))
	})
	return celEnv, celErr
}

// compileWhere parses and type-checks a where expression (it must be a
// bool) and returns its program, whose every evaluation is cut off past
// MaxCELCost.
func compileWhere(expr string) (cel.Program, error) {
	if len(expr) > maxExpressionLen {
		return nil, fmt.Errorf("%d bytes, over the limit of %d", len(expr), maxExpressionLen)
	}
	e, err := env()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, errors.New(strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("%q is a %s, want a bool", expr, ast.OutputType())
	}
	return e.Program(ast, cel.CostLimit(MaxCELCost), cel.InterruptCheckFrequency(100))
}

// ReadSecret reads a webhook secret file: whsec_<base64> (a trailing
// newline is ignored) and returns the HMAC key, the decoded part. Errors
// never quote the file's content.
func ReadSecret(file string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	enc, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, fmt.Errorf("secret_file %s: want whsec_<base64>", file)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(key) < 16 || len(key) > 64 {
		return nil, fmt.Errorf("secret_file %s: want whsec_ followed by 16 to 64 bytes in base64", file)
	}
	return key, nil
}
