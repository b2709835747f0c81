//go:build tools

// Package tools pins the Karmada commands the peer benchmark runs
// (hack/build-peers.sh builds them from this module; `make test` never does).
package tools

import (
	_ "github.com/karmada-io/karmada/cmd/controller-manager"
	_ "github.com/karmada-io/karmada/cmd/scheduler"
	_ "github.com/karmada-io/karmada/cmd/webhook"
)
