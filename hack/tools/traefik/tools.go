//go:build tools

// Package tools pins the traefik command so that `go mod tidy` keeps its
// dependencies; hack/build-tools.sh --with-traefik builds it from this module.
package tools

import (
	_ "github.com/traefik/traefik/v3/cmd/traefik"
)
