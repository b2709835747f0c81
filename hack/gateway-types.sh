#!/usr/bin/env bash
# Rust types of the Gateway API kinds kcp-ingress handles, generated with
# kopium from the CRDs of the Gateway API release the data plane speaks
# (sigs.k8s.io/gateway-api as hack/tools/traefik/go.mod requires it; the CRDs
# come from the Go module cache, see gateway_api_crd_dir in
# hack/lib/tools.sh), one module per kind under src/gateway_api/: the
# standard channel, except TLSRoute, TCPRoute and UDPRoute, which only the
# experimental channel has (gateway_api_experimental_routes).
#
# Usage: hack/gateway-types.sh [--check] [--install-only]
#   (none)          regenerate src/gateway_api/ (make gateway-types)
#   --check         fail when src/gateway_api/ is not what (none) would write
#                   (make gateway-types-check), see below
#   --install-only  only install kopium into the tool cache
#
# kopium (crates.io, the version tool_version pins in hack/lib/tools.sh) is
# installed the first time with `cargo install --locked` into
# <tool cache>/kopium-<version> (a cold install compiles it: 5-10 minutes on
# 2 cores).
#
# src/gateway_api/mod.rs records two digests: of the inputs (kopium's
# version and flags, the kinds, the CRD files) and of the generated kind
# modules. --check regenerates everything with kopium and compares when
# kopium is in the cache; without it (a cold CI machine) it does not install
# it, but regenerates mod.rs alone from the current inputs and the committed
# kind modules and compares that: it fails as well when the CRDs, kopium's
# version or flags changed, or when a generated file was edited.
#
# Environment:
#   KCP_INGRESS_CACHE   cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/kcp-ingress)
#   CARGO               cargo to install kopium with (default: cargo)
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=hack/lib/tools.sh
source "$here/lib/tools.sh"

die() { echo "gateway-types: $*" >&2; exit 1; }

mode=generate
for arg in "$@"; do
  case $arg in
    --check) mode=check ;;
    --install-only) mode=install ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gateway-types: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# The kinds: CRD file (plural), the version generated, the module, the
# channel. TLSRoute: v1alpha2, the version Traefik v3.6 watches and writes
# status to (its pkg/provider/kubernetes/gateway uses GatewayV1alpha2
# TLSRoutes), although v1alpha3 is the stored one in v1.4.0; both are served
# and the schemas of the fields kcp-ingress reads are the same.
kinds=(
  "gatewayclasses v1 gateway_class standard"
  "gateways v1 gateway standard"
  "httproutes v1 http_route standard"
  "grpcroutes v1 grpc_route standard"
  "referencegrants v1beta1 reference_grant standard"
  "tlsroutes v1alpha2 tls_route experimental"
  "tcproutes v1alpha2 tcp_route experimental"
  "udproutes v1alpha2 udp_route experimental"
)
# Derives beyond kopium's own (Serialize, Deserialize, Clone, Debug):
# Default to build objects field by field, PartialEq to compare what is
# with what should be. No JSON schema: these CRDs come from upstream YAML
# and are never generated from the types (--schema disabled).
kopium_flags=(--schema disabled --derive Default --derive PartialEq --smart-derive-elision --docs)

kv=$(tool_version kopium)
kopium=$(tool_dir kopium)/bin/kopium
full=true
if [[ ! -x $kopium && $mode == check ]]; then
  full=false
elif [[ ! -x $kopium ]]; then
  echo "gateway-types: installing kopium $kv into $(tool_dir kopium); a cold install compiles it (minutes)" >&2
  start=$SECONDS
  # Its own temporary target directory, not the project's.
  (unset CARGO_TARGET_DIR && "${CARGO:-cargo}" install --quiet --locked --root "$(tool_dir kopium)" kopium --version "=$kv")
  echo "gateway-types: installed kopium $kv in $((SECONDS - start)) s" >&2
fi
if $full; then
  [[ $($kopium --version) == "kopium $kv" ]] || die "$kopium is not kopium $kv: $($kopium --version)"
fi
[[ $mode != install ]] || exit 0

command -v rustfmt >/dev/null || die "'rustfmt' is needed on PATH"
command -v sha256sum >/dev/null || die "'sha256sum' is needed on PATH"
gv=$(gateway_api_version) || die "cannot tell the Gateway API version"
crds=$(gateway_api_crd_dir) || die "cannot find the Gateway API CRDs (go mod download sigs.k8s.io/gateway-api@$gv)"
# config/crd/: the channels are its subdirectories
crds=${crds%/standard}
edition=$(sed -n 's/^edition *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
dest=$repo/src/gateway_api

out=$(mktemp -d)
trap 'rm -rf -- "$out" "$out.diff"' EXIT

modules=()
files=()
for k in "${kinds[@]}"; do
  read -r plural version module channel <<<"$k"
  modules+=("$module")
  files+=("$channel/gateway.networking.k8s.io_$plural.yaml")
  [[ -f $crds/${files[-1]} ]] || die "no ${files[-1]} in $crds"
done

# What the output is a function of.
inputs_digest=$(
  {
    echo "kopium $kv ${kopium_flags[*]} edition $edition"
    printf '%s\n' "${kinds[@]}"
    (cd "$crds" && sha256sum "${files[@]}")
  } | sha256sum | cut -d' ' -f1
)

if $full; then
  for i in "${!kinds[@]}"; do
    read -r plural version module channel <<<"${kinds[$i]}"
    file=${files[$i]#*/}
    {
      echo "//! \`$plural.gateway.networking.k8s.io/$version\` (Gateway API $gv, $channel"
      echo "//! channel): generated, do not edit."
      echo "//!"
      echo "//! Generated by \`hack/gateway-types.sh\` (\`make gateway-types\`) with kopium"
      echo "//! $kv from \`config/crd/$channel/$file\` of the Go module"
      echo "//! \`sigs.k8s.io/gateway-api@$gv\`:"
      echo "//! \`kopium ${kopium_flags[*]} --api-version $version -f $file\`."
      echo "//! \`make gateway-types-check\` fails when this file differs from what that writes."
      echo
      # kopium's own header repeats its command line, which holds the path of
      # the Go module cache: run it from the CRD directory on a relative path.
      (cd "$crds/$channel" && "$kopium" "${kopium_flags[@]}" --api-version "$version" -f "$file") |
        sed '1,/^$/{/^\/\/ /d}'
    } >"$out/$module.rs"
  done
  rustfmt --edition "$edition" "$out"/*.rs
else
  for module in "${modules[@]}"; do
    [[ -f $dest/$module.rs ]] || die "src/gateway_api/$module.rs is missing; run make gateway-types"
    cp "$dest/$module.rs" "$out/"
  done
fi
output_digest=$(cd "$out" && sha256sum "${modules[@]/%/.rs}" | sha256sum | cut -d' ' -f1)

{
  echo "//! Gateway API types (\`gateway.networking.k8s.io\`, $gv; standard channel, and"
  echo "//! the experimental channel for TLSRoute, TCPRoute and UDPRoute),"
  echo "//! generated by \`hack/gateway-types.sh\` (\`make gateway-types\`) with kopium $kv,"
  echo "//! one module per kind; do not edit."
  echo
  echo "// hack/gateway-types.sh inputs sha256: $inputs_digest"
  echo "// hack/gateway-types.sh output sha256: $output_digest"
  echo
  echo "// The doc comments are the CRDs' field descriptions, the Gateway API's spec"
  echo "// text as written upstream: lists continued without indentation, tabs."
  echo "#![allow("
  echo "    clippy::doc_lazy_continuation,"
  echo "    clippy::tabs_in_doc_comments,"
  echo "    reason = \"upstream spec text, kept verbatim\""
  echo ")]"
  echo
  for module in "${modules[@]}"; do
    echo "pub mod $module;"
  done
} >"$out/mod.rs"
rustfmt --edition "$edition" "$out/mod.rs"

if [[ $mode == check ]]; then
  how="what kopium $kv writes from the Gateway API $gv CRDs"
  $full || how="what the digests of its inputs and output in mod.rs say (kopium is not installed, so they are compared instead)"
  # Without kopium, only mod.rs is new; the kind modules are the committed ones.
  if ! diff -ru "$out" "$dest" >"$out.diff" 2>&1; then
    head -n 40 "$out.diff" >&2
    die "src/gateway_api/ is not $how; run make gateway-types"
  fi
  echo "gateway-types: src/gateway_api/ is current (Gateway API $gv, kopium $kv$($full || echo ", by digests"))" >&2
  exit 0
fi

mkdir -p "$dest"
rm -f -- "$dest"/*.rs
cp "$out"/*.rs "$dest/"
echo "gateway-types: wrote src/gateway_api/ (Gateway API $gv, kopium $kv)" >&2
