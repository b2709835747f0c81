//go:build tools

// Package tools pins the etcd command so that `go mod tidy` keeps its
// dependencies; hack/build-tools.sh builds it from this module.
package tools

import _ "go.etcd.io/etcd/server/v3"
