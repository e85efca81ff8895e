"""GraphiQL's production build and its React runtime, vendored from the npm registry.

Not code of ours: `vendor/graphiql/refresh.sh` copies these files from the committed
lockfile (versions in versions.json, licences in LICENSES.txt); gateway/graphiql serves them.
"""
