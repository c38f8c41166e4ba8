//go:build tools

// Package tools pins the helm command that build.sh compiles, so that `go mod tidy` keeps its
// dependencies in go.mod and go.sum. It is never built itself (build tag "tools").
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
