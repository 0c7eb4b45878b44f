#!/usr/bin/env bash
# Installs everything the platform needs on a fresh Debian machine with Python 3.11, Java 17 and
# Maven: system packages (Redis, Prometheus, Pushgateway), uv, one locked Python environment per
# project, and the JVM jars from Maven Central. Idempotent; a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
LOGS=.local/setup-logs

# Runs a long step with its output in a log, under one status line: what, elapsed seconds, the
# log's size, the artifacts downloaded so far and its last line (for mvn, the last artifact).
# Redrawn in place on a terminal; elsewhere (CI, a log) a plain line every 5 s. So setup is never
# silent for more than 10 s, and a step that fails shows the end of its log.
with_progress() {
  local what=$1 logf=$2 start=$SECONDS last=0 rc=0 pid el size got detail
  shift 2
  mkdir -p "$(dirname "$logf")"
  "$@" >"$logf" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    el=$((SECONDS - start))
    size=$(( $(stat -c %s "$logf" 2>/dev/null || echo 0) / 1024 ))
    got=$(grep -c 'Downloaded from\|^Get:\|Downloaded ' "$logf" 2>/dev/null || true)
    detail=$(tail -c 4000 "$logf" 2>/dev/null | tr '\r' '\n' | sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -v '^[[:space:]]*$' | tail -n 1 |
      sed -E 's#.*Download(ed|ing) from [^:]*: ##; s# \(.*##; s#^https?://.*/##' | cut -c1-70 || true)
    if [ -t 1 ]; then
      printf '\r\033[K\033[1m[setup]\033[0m %s: %d s, log %d KB, %s downloaded · %s' "$what" "$el" "$size" "${got:-0}" "$detail"
    elif ((el - last >= 5)); then
      printf '[setup] %s: %d s, log %d KB, %s downloaded · %s\n' "$what" "$el" "$size" "${got:-0}" "$detail"
      last=$el
    fi
    sleep 1
  done
  wait "$pid" || rc=$?
  if [ -t 1 ]; then printf '\r\033[K'; fi
  if ((rc == 0)); then
    log "$what: done in $((SECONDS - start)) s (log $logf)"
  else
    tail -n 30 "$logf" >&2
    log "$what: FAILED (exit $rc) after $((SECONDS - start)) s (full log: $logf)"
  fi
  return "$rc"
}

# 1. System packages, only when missing.
APT_PACKAGES=(redis-server redis-tools prometheus prometheus-pushgateway chromium wrk prometheus-redis-exporter)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  with_progress "apt-get update" "$LOGS/apt-update.log" $SUDO apt-get update
  with_progress "apt-get install ${missing[*]}" "$LOGS/apt-install.log" \
    env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  # The platform runs its own instances under .local/state; packaged services would hold the ports.
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now redis-server prometheus prometheus-pushgateway prometheus-redis-exporter >/dev/null 2>&1 || true
  fi
fi

# 2. uv, the lock and environment tool.
PY=${PYTHON:-python3.11}
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  with_progress "installing uv" "$LOGS/pip-uv.log" "$PY" -m pip install "uv==0.13.9"
fi
export UV_PYTHON_DOWNLOADS=never UV_PYTHON="$PY"

# 3. One environment per project, from its committed lock file.
for project in tools speed_layer batch_layer serving_layer; do
  env_name=${project%_layer}
  with_progress "uv sync $project -> .venvs/$env_name" "$LOGS/uv-$env_name.log" \
    env UV_PROJECT_ENVIRONMENT="$PWD/.venvs/$env_name" "$PY" -m uv sync --locked --all-groups --project "$project"
done
log "python environments ready in .venvs/ (tools, speed, batch, serving)"

# 4. JVM jars from Maven Central; refetched only when infra/jars/pom.xml changes.
# Each pom profile goes to a folder under .local/jars (profile:folder); spark-s3 adds s3a to spark's.
JARS=.local/jars
JAR_PROFILES=(kafka:kafka flink:flink spark:spark spark-s3:spark flink-s3:flink-plugins/s3-fs-hadoop
  kafka-exporter:kafka-exporter profiler:profiler)
stamp="$JARS/.pom-$(sha256sum infra/jars/pom.xml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  for entry in "${JAR_PROFILES[@]}"; do rm -rf "${JARS:?}/${entry#*:}"; done
  for entry in "${JAR_PROFILES[@]}"; do
    profile=${entry%%:*} folder=${entry#*:}
    mkdir -p "$JARS"
    with_progress "fetching the $profile jars with mvn" "$JARS/mvn-$profile.log" \
      mvn -B -Dstyle.color=never -f infra/jars/pom.xml -P"$profile" dependency:copy-dependencies \
      -DoutputDirectory="$PWD/$JARS/$folder" -DexcludeScope=provided || exit 1
  done
  rm -f "$JARS"/.pom-* && touch "$stamp"
fi
# The speed job's JVM function, built from speed_layer/functions; rebuilt when its sources change.
fn_stamp="$JARS/functions/.src-$(cat speed_layer/functions/pom.xml $(find speed_layer/functions/src -type f | sort) | sha256sum | cut -c1-16)"
if [ ! -f "$fn_stamp" ]; then
  rm -rf "${JARS:?}/functions" && mkdir -p "$JARS/functions"
  with_progress "building the speed job's JVM function with mvn" "$JARS/mvn-functions.log" \
    mvn -B -Dstyle.color=never -f speed_layer/functions/pom.xml package || exit 1
  cp speed_layer/functions/target/lambda-speed-functions.jar "$JARS/functions/"
  touch "$fn_stamp"
fi
log "jars ready in $JARS/ (kafka, flink, spark with s3a, functions, flink-plugins, kafka-exporter)"

# >>> k8s: kustomize where kubectl has none recent; the operators' CRDs for tests/k8s >>>
# `make k8s-render` uses `kubectl kustomize` when kubectl bundles kustomize v5, else .local/bin/kustomize,
# built here from the Go module proxy. The CRD schemas (Strimzi, Flink operator, prometheus-operator,
# spark-operator)
# are built into .local/crds/ from registry packages: see lambda_tools/k8s_crds.py and docs/operations.md.
if ! kubectl version --client -o json 2>/dev/null | grep -q '"kustomizeVersion": "v5' \
   && [ ! -x .local/bin/kustomize ]; then
  if PATH="$PATH:/usr/local/go/bin" command -v go >/dev/null; then
    with_progress "building kustomize v5.5.0 into .local/bin (go install)" "$LOGS/kustomize.log" \
      env GOBIN="$PWD/.local/bin" PATH="$PATH:/usr/local/go/bin" go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0
  else
    log "WARNING: no kubectl with kustomize v5 and no Go to build kustomize: make k8s-render cannot run"
  fi
fi
CRDS=.local/crds
crd_stamp="$CRDS/.pom-$(sha256sum infra/jars/pom.xml | cut -c1-16)"
if [ ! -f "$crd_stamp" ]; then
  rm -rf "${CRDS:?}/jars" && mkdir -p "$CRDS"
  with_progress "fetching the operators' API jars (mvn profile crds)" "$CRDS/mvn-crds.log" \
    mvn -B -Dstyle.color=never -f infra/jars/pom.xml -Pcrds dependency:copy-dependencies \
    -DoutputDirectory="$PWD/$CRDS/jars" || exit 1
  rm -f "$CRDS"/.pom-* && touch "$crd_stamp"
fi
# A machine without a JDK >= 21 or Go still sets up; only tests/k8s then fails, naming the missing CRD.
if with_progress "building the CRD schemas (lambda_tools.k8s_crds)" "$LOGS/k8s-crds.log" \
  env PATH="$PATH:/usr/local/go/bin" .venvs/tools/bin/python -m lambda_tools.k8s_crds --jars "$CRDS/jars" --out "$CRDS"; then
  log "k8s tooling ready: CRD schemas in $CRDS/"
else
  log "WARNING: some CRD schemas could not be built (above); tests/k8s will fail until they are"
fi
# `make k8s-up`: etcd from Debian, kube-apiserver and kubectl built from the k8s.io/kubernetes Go module
# (lambda_tools/k8s_apiserver.py), cached in ~/.cache/lambda-platform so a fresh clone reuses them.
k8s_missing=()
for p in etcd-server openssl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || k8s_missing+=("$p")
done
if ((${#k8s_missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  with_progress "apt-get update" "$LOGS/apt-update-k8s.log" $SUDO apt-get update
  with_progress "installing ${k8s_missing[*]} (make k8s-up)" "$LOGS/apt-install-k8s.log" \
    env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${k8s_missing[@]}"
  # The platform runs its own etcd under .local/state; the packaged service would hold port 2379.
  if [ -d /run/systemd/system ]; then $SUDO systemctl disable --now etcd >/dev/null 2>&1 || true; fi
fi
# A cold build takes 5 to 15 minutes; the progress line shows that it is still going.
if ! with_progress "kube-apiserver and kubectl v1.34.2 (cached in ~/.cache/lambda-platform)" "$LOGS/k8s-apiserver.log" \
  env PATH="$PATH:/usr/local/go/bin" .venvs/tools/bin/python -m lambda_tools.k8s_apiserver build; then
  log "WARNING: kube-apiserver/kubectl could not be built (above); make k8s-up and tests/k8s will fail"
fi
# <<< k8s <<<

# >>> cluster: what `make up CLUSTER=1` runs beyond the jars above (docs/cluster.md) >>>
# The object store: SeaweedFS's `weed`, built from the Go module proxy (lambda_tools/cluster/objectstore.py),
# cached in ~/.cache/lambda-platform so a fresh clone reuses it; a cold build takes 5 to 15 minutes.
if ! with_progress "SeaweedFS weed (cached in ~/.cache/lambda-platform)" "$LOGS/seaweedfs.log" \
  env PATH="$PATH:/usr/local/go/bin" .venvs/tools/bin/python -m lambda_tools.cluster.objectstore build; then
  log "WARNING: SeaweedFS could not be built (above); make up CLUSTER=1 and the cluster tests will fail"
fi
# <<< cluster <<<
