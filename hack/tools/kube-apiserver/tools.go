//go:build tools

// Package tools pins the kube-apiserver command so that `go mod tidy` keeps
// its dependencies; hack/build-tools.sh builds it from this module.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
