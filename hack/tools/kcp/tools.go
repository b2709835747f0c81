//go:build tools

// Package tools pins the kcp command so that `go mod tidy` keeps its
// dependencies; hack/build-tools.sh builds it from this module.
package tools

import _ "github.com/kcp-dev/kcp/cmd/kcp"
