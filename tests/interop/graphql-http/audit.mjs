// graphql-http's auditServer against a running Kilde: every MUST, SHOULD and MAY item, sent with
// a valid bearer token (Kilde answers 401 without one). Usage: node audit.mjs URL (the token in
// the KILDE_TOKEN environment variable, never on the command line). Prints one JSON line per
// audit and exits 1 when any audit did not pass (ok), 2 on bad usage.
import { auditServer } from 'graphql-http';

const [url] = process.argv.slice(2);
const token = process.env.KILDE_TOKEN;
if (!url || !token) {
  console.error('usage: KILDE_TOKEN=... node audit.mjs http://127.0.0.1:8000/graphql');
  process.exit(2);
}

function withToken(input, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: withToken });
let failed = 0;
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    failed += 1;
    line.reason = result.reason;
    if (result.response) {
      line.httpStatus = result.response.status;
      line.body = (await result.response.text()).slice(0, 300);
    }
  }
  console.log(JSON.stringify(line));
}
process.exit(failed ? 1 : 0);
