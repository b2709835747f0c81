//go:build tools

// Package tools pins the kube-apiserver and kubectl commands so that
// `go mod tidy` keeps their dependencies; hack/build-tools.sh builds them
// from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
