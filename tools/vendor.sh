#!/usr/bin/env bash
# Copy the pinned front-end libraries (package.json) into static/vendor/ with their licenses.
# Run by `make vendor`; the results are committed, so running the product never needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && cp "$OLDPWD/package.json" . && npm install --no-audit --no-fund --ignore-scripts --silent )
mkdir -p static/vendor/socket.io-client
sio="$tmp/node_modules/socket.io-client"
cp "$sio/dist/socket.io.min.js" "$sio/dist/socket.io.min.js.map" static/vendor/socket.io-client/
cp "$sio/LICENSE" static/vendor/socket.io-client/LICENSE
node -e "console.log(require('$sio/package.json').version)" > static/vendor/socket.io-client/VERSION
echo "vendored socket.io-client $(cat static/vendor/socket.io-client/VERSION)"
mkdir -p static/vendor/lightweight-charts
lwc="$tmp/node_modules/lightweight-charts"
cp "$lwc/dist/lightweight-charts.standalone.production.js" static/vendor/lightweight-charts/
cp "$lwc/LICENSE" static/vendor/lightweight-charts/LICENSE
[ -f "$lwc/NOTICE" ] && cp "$lwc/NOTICE" static/vendor/lightweight-charts/NOTICE
node -e "console.log(require('$lwc/package.json').version)" > static/vendor/lightweight-charts/VERSION
echo "vendored lightweight-charts $(cat static/vendor/lightweight-charts/VERSION)"
