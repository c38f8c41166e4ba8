//go:build tools

// Package tools pins the promtool command that build.sh compiles, so that `go mod tidy` keeps
// its dependencies in go.mod and go.sum. It is never built itself (build tag "tools").
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
