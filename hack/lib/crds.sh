# shellcheck shell=bash
# Applying CustomResourceDefinitions and waiting until they are served, for
# hack/test-env.sh and hack/kcp-env.sh (sourced, not run).
#
# The script defines:
#   api_request PATH [CURL-ARGS...]  a request to the API server the CRDs go
#                                    to (PATH like /apis/GROUP/VERSION); the
#                                    answer goes to stdout
#   crd_ready_line PLURAL GROUP VERSION PATH
#                                    the line its log gets when discovery at
#                                    PATH lists PLURAL
# and sets FIELD_MANAGER (for server-side apply), CRD_POLL (seconds between
# polls) and, if something must be checked while polling, CRD_ALIVE (a
# command that exits the script when the server is gone). env.sh loads this
# file; these functions use its fail, past_deadline and timeout.

FIELD_MANAGER=
CRD_POLL=0.1
CRD_ALIVE=:
readonly CRD_API=/apis/apiextensions.k8s.io/v1/customresourcedefinitions

# json_get FILE PATH: print a field of a JSON file (PATH like status.phase);
# empty when absent or not JSON.
json_get() {
  python3 - "$1" "$2" <<'PY' 2>/dev/null || true
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
for k in sys.argv[2].split("."):
    d = d.get(k, {}) if isinstance(d, dict) else {}
print(d if isinstance(d, (str, int)) else "")
PY
}

# crd_info JSON-FILE: print "name group plural version..." of a CRD object
# (group "-" for the core group).
crd_info() {
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["spec"]
print(d["metadata"]["name"], s["group"] or "-", s["names"]["plural"],
      *[v["name"] for v in s.get("versions", []) if v.get("served", True)])
PY
}

# crd_split OUT-PREFIX ONLY-CRDS FILE...: write each YAML document of FILEs
# that has content to OUT-PREFIX-NNNN.yaml (with ONLY-CRDS 1, only the
# CustomResourceDefinitions); print how many documents of other kinds were
# skipped.
crd_split() {
  local out=$1 only=$2
  shift 2
  awk -v out="$out" -v only="$only" '
    function flush() {
      if (real) {
        if (crd || !only) { n++; file = sprintf("%s-%04d.yaml", out, n); printf "%s", body > file; close(file) }
        else skipped++
      }
      body = ""; real = 0; crd = 0
    }
    FNR == 1 && NR != 1 { flush() }
    /^---/ { flush(); next }
    /^[^#[:space:]]/ { real = 1 }
    /^kind:[[:space:]]*CustomResourceDefinition[[:space:]]*$/ { crd = 1 }
    { body = body $0 "\n" }
    END { flush(); print skipped + 0 }
  ' "$@"
}

# crd_apply DOC FROM LOG: create the CRD in DOC (a document from the
# directory FROM), or apply it server-side when it exists already; append
# its "name group plural version..." to the array crds. Requests and answers
# go to LOG.
crd_apply() {
  local doc=$1 from=$2 log=$3 code name info
  # one answer file per server: the servers of a test environment are
  # applied in parallel, from the same documents
  local resp="$doc.${crd_server:-server}.resp.json"
  code=$(api_request "$CRD_API" -X POST -H 'Content-Type: application/yaml' --data-binary "@$doc" \
    -o "$resp" -w '%{http_code}' 2>>"$log") || code=000
  echo "POST $doc -> $code" >>"$log"
  if [[ $code == 409 && $(json_get "$resp" reason) == AlreadyExists ]]; then
    name=$(json_get "$resp" details.name)
    [[ -n $name ]] || fail "$log" "CRD in $doc already exists but its name is unknown"
    code=$(api_request "$CRD_API/$name?fieldManager=$FIELD_MANAGER&force=true" \
      -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary "@$doc" \
      -o "$resp" -w '%{http_code}' 2>>"$log") || code=000
    echo "APPLY $name -> $code" >>"$log"
  fi
  if [[ $code != 20[01] ]]; then
    cat "$resp" >>"$log" 2>/dev/null || true
    echo >>"$log"
    fail "$log" "applying the CRD document $doc (from $from) failed with HTTP $code: $(json_get "$resp" message)"
  fi
  info=$(crd_info "$resp") || fail "$log" "unexpected answer to the CRD document $doc"
  crds+=("$info")
}

# crd_wait_served LOG INFO: wait until the CRD of INFO ("name group plural
# version...") is Established and discovery lists it in each served version.
# shellcheck disable=SC2154 # timeout: see env.sh
crd_wait_served() {
  local log=$1 crd group plural versions v path found
  read -r crd group plural versions <<<"$2"
  until [[ $(api_request "$CRD_API/$crd" 2>/dev/null |
    python3 -c 'import json,sys; c=json.load(sys.stdin).get("status",{}).get("conditions",[]); print(any(x["type"]=="Established" and x["status"]=="True" for x in c))' 2>/dev/null) == True ]]; do
    $CRD_ALIVE
    past_deadline && fail "$log" "CRD $crd was not Established within ${timeout}s"
    sleep "$CRD_POLL"
  done
  for v in $versions; do
    if [[ $group == - ]]; then path=/api/$v; else path=/apis/$group/$v; fi
    until found=$(api_request "$path" 2>/dev/null |
      python3 -c 'import json,sys; print(sys.argv[1] in [r["name"] for r in json.load(sys.stdin).get("resources",[])])' "$plural" 2>/dev/null) &&
      [[ $found == True ]]; do
      $CRD_ALIVE
      past_deadline && fail "$log" "$path did not list $plural within ${timeout}s"
      sleep "$CRD_POLL"
    done
    crd_ready_line "$plural" "$group" "$v" "$path" >>"$log"
  done
}
