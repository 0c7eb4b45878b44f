#!/usr/bin/env bash
# Re-fetches the vendored Apache ECharts at the pinned version from the npm registry (npm pack),
# checks the tarball against the pinned integrity, and copies the minified "common" build (line,
# bar, tooltip, dataZoom: what the dashboard uses) with its licence files next to this script.
# The dashboard never loads a CDN: the page's CSP allows only its own files.
set -euo pipefail
VERSION=6.1.0
INTEGRITY=sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "echarts@$VERSION" >/dev/null
tarball=echarts-$VERSION.tgz
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$actual" != "$INTEGRITY" ]; then
  echo "echarts@$VERSION: integrity $actual, expected $INTEGRITY" >&2
  exit 1
fi
tar xzf "$tarball"
cp package/dist/echarts.common.min.js "$here/echarts.common.min.js"
cp package/LICENSE "$here/LICENSE"
cp package/NOTICE "$here/NOTICE"
cp package/licenses/LICENSE-d3 "$here/LICENSE-d3"
echo "vendored echarts@$VERSION into $here"
