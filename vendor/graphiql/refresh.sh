#!/usr/bin/env bash
# Refresh GraphiQL's vendored files in gateway/graphiql/assets/ from this folder's committed
# package-lock.json, so the IDE loads with no CDN: `vendor/graphiql/refresh.sh`, then commit
# what changed. To move to other versions: edit package.json, `npm install` (updates the
# lockfile), run this script, and run tests/e2e/test_graphiql.py.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
out=../../gateway/graphiql/assets
nm=node_modules
cp "$nm/graphiql/graphiql.min.js" "$nm/graphiql/graphiql.min.css" "$out/"
cp "$nm/react/umd/react.production.min.js" "$nm/react-dom/umd/react-dom.production.min.js" "$out/"
{
  echo "Vendored by vendor/graphiql/refresh.sh from the npm registry (package-lock.json);"
  echo "every package is MIT-licensed: the licence texts follow."
  for pkg in graphiql react react-dom; do
    version=$(node -p "require('./$nm/$pkg/package.json').version")
    echo
    echo "==== $pkg $version ($(node -p "require('./$nm/$pkg/package.json').license"))"
    cat "$nm/$pkg/LICENSE"
  done
} > "$out/LICENSES.txt"
node -e '
  const lock = require("./package-lock.json").packages;
  const v = (p) => lock["node_modules/" + p].version;
  console.log(JSON.stringify({graphiql: v("graphiql"), react: v("react"),
                              "react-dom": v("react-dom")}, null, 2));
' > "$out/versions.json"
echo "GraphiQL assets refreshed in gateway/graphiql/assets/:"
ls -l "$out"
