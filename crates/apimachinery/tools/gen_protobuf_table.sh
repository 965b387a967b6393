#!/bin/sh
# Regenerates crates/apimachinery/src/protobuf/table.rs. Needs checkouts of the Go API types:
#   GO_SRC/{api,apimachinery,apiextensions-apiserver,kube-aggregator,metrics} (kubernetes/<name>),
#   each with a GIT_COMMIT file holding the commit it was taken from.
set -eu
GO_SRC=${GO_SRC:-/tmp/gosrc}
cd "$(dirname "$0")/../../.."
cargo run -q -p apimachinery --example gen_protobuf_table -- \
  crates/apimachinery/src/protobuf/table.rs \
  k8s.io.api="$GO_SRC/api" \
  k8s.io.apimachinery="$GO_SRC/apimachinery" \
  k8s.io.apiextensions_apiserver="$GO_SRC/apiextensions-apiserver" \
  k8s.io.kube_aggregator="$GO_SRC/kube-aggregator" \
  k8s.io.metrics="$GO_SRC/metrics"
