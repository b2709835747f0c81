//go:build tools

// Package tools pins the external-dns command the peer benchmark runs
// (hack/build-peers.sh builds it from this module; `make test` never does).
package tools

import (
	_ "sigs.k8s.io/external-dns"
)
