// The reference aggregator a user might pick instead of Kilde: GraphQL Yoga on Node.js, undici
// for the upstream calls. Part of Kilde's side-by-side benchmark (bench/compare.py), not of Kilde.
//
// The same schema shape as Kilde's legevakt fields and equivalent resolvers: `patient(nin)`
// starts every upstream call at once (the calls Kilde makes, from the plan bench/workload.py
// recorded: same methods, URLs, headers and bodies, the patient's number filled in), and each
// field awaits only the sources it needs, maps their FHIR to the unified shape, links
// medications across PLL, e-resept and the municipal store, and orders items clinically as
// Kilde does. What it does not do, on purpose: verify a token, decide policy, write an audit
// trail, cache. Run: PORT=8400 PLAN=bench/out/plan.json node server.mjs (or LISTEN_FD=N)
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createSchema, createYoga } from 'graphql-yoga';
import { Agent, request } from 'undici';

const plan = JSON.parse(readFileSync(process.env.PLAN, 'utf8'));
const PLACEHOLDER = plan.placeholder;
// The same connection budget as Kilde's shared client (connectors/http.py).
const dispatcher = new Agent({ connections: 512, keepAliveTimeout: 30_000 });

const SNOMED = 'http://snomed.info/sct';
const ICD10 = 'urn:oid:2.16.578.1.12.4.1.1.7110';
const ATC = 'http://www.whocc.no/atc';
const NLK = 'urn:oid:2.16.578.1.12.4.1.1.7280';
const CATEGORY_8202 = 'urn:oid:2.16.578.1.12.4.1.1.8202';
const INTERPRETATION = 'urn:oid:2.16.578.1.12.4.1.1.8244';
const MUNI_EXT = 'https://sandbox.kilde.no/fhir/StructureDefinition/';
const HLR_MINUS = new Set(['304253006']);
const OLD = Date.parse('1900-01-01T00:00:00Z');
const CATEGORIES = {
  municipal: ['CONDITIONS', 'CRITICAL_INFORMATION', 'DOCUMENTS', 'MEDICATIONS', 'MUNICIPAL_SERVICES',
    'TREATMENT_LIMITATIONS'],
  kjernejournal: ['CRITICAL_INFORMATION', 'TREATMENT_LIMITATIONS'],
  pll: ['MEDICATIONS'],
  eresept: ['MEDICATIONS'],
  proevesvar: ['LAB_RESULTS'],
};

// -- fetching ------------------------------------------------------------------------------------

async function call(c, nin) {
  const headers = {};
  for (const [k, v] of Object.entries(c.headers)) headers[k] = v.replaceAll(PLACEHOLDER, nin);
  const { statusCode, body } = await request(c.url.replaceAll(PLACEHOLDER, nin), {
    dispatcher, method: c.method, headers,
    body: c.body ? c.body.replaceAll(PLACEHOLDER, nin) : undefined,
  });
  if (statusCode >= 400 && statusCode !== 403) {
    await body.dump();
    throw new Error(`Source ${c.source} answered HTTP ${statusCode}`);
  }
  return { call: c, status: statusCode, body: await body.json() };
}

async function fetchSource(calls, nin) {
  const started = performance.now();
  // each stage at once, once the stage before it answered (as bench/floor.py)
  const answers = [];
  for (const stage of [...new Set(calls.map((c) => c.stage))].sort((a, b) => a - b)) {
    answers.push(...(await Promise.all(calls.filter((c) => c.stage === stage).map((c) => call(c, nin)))));
  }
  return { answers, latencyMs: Math.round((performance.now() - started) * 10) / 10 };
}

// In Kilde's registry order, which is the order of its `sources` rows.
const bySource = new Map(Object.keys(CATEGORIES).map((s) => [s, []]));
for (const c of plan.calls) bySource.get(c.source).push(c);
for (const [s, calls] of bySource) if (!calls.length) bySource.delete(s);

// -- FHIR readers (ports of connectors/fhir.py) ----------------------------------------------------

function codingOf(concept, prefer) {
  if (!concept || typeof concept !== 'object') return null;
  let codings = (concept.coding || []).filter((c) => c && c.code);
  if (prefer) codings = [...codings].sort((a, b) => (a.system !== prefer) - (b.system !== prefer));
  if (!codings.length) {
    return typeof concept.text === 'string' ? { system: '', code: '', display: concept.text } : null;
  }
  const c = codings[0];
  const display = c.display || concept.text;
  return { system: String(c.system ?? ''), code: String(c.code), display: display ? String(display) : null };
}
const textOf = (concept) => { const c = codingOf(concept); return c ? (c.display || c.code || null) : null; };
const first = (v) => (Array.isArray(v) && v.length ? v[0] : null);
const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
const str = (v) => (typeof v === 'string' && v ? v : null);
const ts = (v) => (v ? Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v) : OLD);
const extension = (r, url) => {
  for (const e of r.extension || []) {
    if (e && e.url === url) for (const [k, v] of Object.entries(e)) if (k.startsWith('value')) return v;
  }
  return null;
};
const identifierByType = (r, text) => {
  for (const i of r.identifier || []) if (i && i.value && i.type && i.type.text === text) return String(i.value);
  return null;
};
const dateOf = (v) => (typeof v === 'string' && v.length >= 10 ? v.slice(0, 10) : null);
const prov = (source, recordId) => ({ source, recordId });

// -- per-source mapping (ports of the connectors' mapping modules) ---------------------------------

function mapMunicipal(answers) {
  const out = { TREATMENT_LIMITATIONS: [], MUNICIPAL_SERVICES: [], CONDITIONS: [], MEDICATIONS: [], DOCUMENTS: [],
    CRITICAL_INFORMATION: [] };
  const kinds = { Consent: 'TREATMENT_LIMITATIONS', EpisodeOfCare: 'MUNICIPAL_SERVICES', Condition: 'CONDITIONS',
    MedicationAdministration: 'MEDICATIONS', DocumentReference: 'DOCUMENTS', AllergyIntolerance: 'CRITICAL_INFORMATION',
    Flag: 'CRITICAL_INFORMATION' };
  for (const { body } of answers) {
    const entries = body.entry || [];
    // the first search resolves the Patient (the peer trusts the plan's store to be strict and
    // does not re-check the patient of each record, as Kilde does); the last is the privacy Consent
    for (const entry of entries.slice(0, -1)) {
      for (const e of (entry.resource && entry.resource.entry) || []) {
        const r = e.resource;
        if (!r || !kinds[r.resourceType] || r.status === 'entered-in-error') continue;
        if ((codingOf(r.verificationStatus) || {}).code === 'entered-in-error') continue;
        if (r.resourceType === 'Consent' && (codingOf(r.scope) || {}).code !== 'treatment') continue;
        out[kinds[r.resourceType]].push(MUNICIPAL_MAPPERS[r.resourceType](r, prov('municipal', r.id)));
      }
    }
  }
  return out;
}

const SERVICE_STATUS = { finished: 'completed', waitlist: 'planned', onhold: 'on-hold' };
const FLAG_WORDS = [[['implantat', 'implant', 'pågående behandling'], 'TREATMENT_OR_IMPLANT'],
  [['smitte', 'infeksjon', 'infection', 'mrsa', 'vre', 'esbl'], 'INFECTION'],
  [['anestesi', 'anaesthe', 'anesthe'], 'ANAESTHESIA_COMPLICATION']];
const MUNICIPAL_MAPPERS = {
  AllergyIntolerance(r, provenance) {
    const verification = (codingOf(r.verificationStatus) || {}).code || null;
    const clinical = (codingOf(r.clinicalStatus) || {}).code || null;
    const code = codingOf(r.code);
    const severities = (r.reaction || []).map((x) => x.severity).filter((s) => SEVERITY_RANK[s]);
    const worst = severities.sort((a, b) => SEVERITY_RANK[b] - SEVERITY_RANK[a])[0];
    const inactive = verification === 'refuted' || clinical === 'inactive' || clinical === 'resolved';
    return { id: r.id, type: 'ALLERGY', code, description: code.display || code.code,
      status: inactive ? 'inactive' : 'active', recordedAt: r.recordedDate || obj(r.meta).lastUpdated || null,
      provenance, severity: worst || ({ high: 'severe', low: 'mild' })[r.criticality] || null,
      reaction: (r.reaction || []).flatMap((x) => (x.manifestation || []).map(textOf)).filter(Boolean).join(', ') || null };
  },
  Flag(r, provenance) {
    const code = codingOf(r.code);
    const words = [...(r.category || []), r.code].filter(Boolean)
      .flatMap((c) => [c.text, ...(c.coding || []).map((x) => x.display)]).filter(Boolean).join(' ').toLowerCase();
    const type = (FLAG_WORDS.find(([keys]) => keys.some((k) => words.includes(k))) || [null, 'OTHER'])[1];
    const end = dateOf(obj(r.period).end);
    const expired = end !== null && end < new Date().toISOString().slice(0, 10);
    return { id: r.id, type, code, description: code.display || code.code,
      status: r.status === 'inactive' || expired ? 'inactive' : 'active',
      recordedAt: obj(r.period).start || obj(r.meta).lastUpdated || null, provenance, severity: null, reaction: null };
  },
  EpisodeOfCare(r, provenance) {
    const manager = obj(r.managingOrganization);
    const ref = manager.reference;
    const unit = (typeof ref === 'string' && ref.startsWith('#')
      && (r.contained || []).find((c) => c && c.id === ref.slice(1))) || {};
    const phone = (unit.telecom || []).find((t) => t && t.system === 'phone');
    const status = String(r.status || 'unknown');
    return { id: r.id, code: codingOf(first(r.type)), status: SERVICE_STATUS[status] || status,
      started: dateOf(obj(r.period).start), unit: str(manager.display) || str(unit.name),
      phone: phone ? str(phone.value) : null, provenance };
  },
  Consent(r, provenance) {
    const provision = obj(r.provision);
    const code = codingOf(first(provision.code) || first(r.category));
    const status = String(r.status || 'unknown');
    return { id: r.id, code, status: status === 'rejected' ? 'inactive' : status,
      description: str(extension(r, `${MUNI_EXT}behandlingsavklaring-description`)) || code.display || code.code,
      decidedAt: r.dateTime || null, provenance };
  },
  Condition(r, provenance) {
    const clinical = codingOf(r.clinicalStatus);
    return { id: r.id, code: codingOf(r.code), clinicalStatus: clinical && clinical.code ? clinical.code : 'unknown',
      onset: dateOf(r.onsetDateTime), provenance };
  },
  MedicationAdministration(r, provenance) {
    const code = codingOf(r.medicationCodeableConcept, ATC);
    const period = obj(r.effectivePeriod);
    const dosage = str(obj(r.dosage).text);
    const status = String(r.status || 'unknown');
    return { id: r.id, code, name: textOf(r.medicationCodeableConcept) || code.code,
      status: status === 'in-progress' ? 'active' : status, dosage: dosage ? { text: dosage } : null,
      started: dateOf(period.start) || dateOf(r.effectiveDateTime), ended: dateOf(period.end),
      treatmentId: identifierByType(r, 'treatmentID'), pllId: null, prescriptionId: null,
      conflicts: [], provenance, provenances: [provenance] };
  },
  DocumentReference(r, provenance) {
    const type = codingOf(r.type);
    const attachment = obj(obj(first(r.content)).attachment);
    return { id: r.id, title: str(r.description) || str(attachment.title) || type.display || '',
      date: r.date || null, provenance };
  },
};

const SEVERITY_RANK = { mild: 1, moderate: 2, severe: 3 };
function mapKjernejournal(answers) {
  const out = { CRITICAL_INFORMATION: [], TREATMENT_LIMITATIONS: [] };
  for (const { call: c, body } of answers) {
    if (c.kind === 'status') continue;
    for (const e of body.entry || []) {
      const r = e.resource;
      if (!r || r.resourceType !== c.kind) continue;
      const version = obj(r.meta).versionId;
      const provenance = prov('kjernejournal', version ? `${r.id}/${version}` : r.id);
      const verification = (codingOf(r.verificationStatus) || {}).code || null;
      const clinical = (codingOf(r.clinicalStatus) || {}).code || null;
      const inactive = verification === 'refuted' || clinical === 'inactive' || clinical === 'resolved';
      if (c.kind === 'AllergyIntolerance') {
        if (verification === 'entered-in-error') continue;
        const code = codingOf(r.code);
        const severities = (r.reaction || []).map((x) => x.severity).filter((s) => SEVERITY_RANK[s]);
        const worst = severities.sort((a, b) => SEVERITY_RANK[b] - SEVERITY_RANK[a])[0];
        out.CRITICAL_INFORMATION.push({ id: r.id, type: 'ALLERGY', code, description: code.display || code.code,
          status: inactive ? 'inactive' : 'active', recordedAt: r.recordedDate || null, provenance,
          severity: worst || ({ high: 'severe', low: 'mild' })[r.criticality] || null,
          reaction: (r.reaction || []).flatMap((x) => (x.manifestation || []).map(textOf)).filter(Boolean).join(', ') || null });
      } else if (c.kind === 'Condition') {
        if (verification === 'entered-in-error') continue;
        const code = codingOf(r.code, ICD10);
        out.CRITICAL_INFORMATION.push({ id: r.id, type: 'CRITICAL_CONDITION', code, description: code.display || code.code,
          status: inactive ? 'inactive' : 'active', recordedAt: r.recordedDate || null, provenance, severity: null, reaction: null });
      } else if (c.kind === 'Flag') {
        if (r.status === 'entered-in-error') continue;
        const code = codingOf(r.code);
        out.CRITICAL_INFORMATION.push({ id: r.id, type: 'OTHER', code, description: code.display || code.code,
          status: r.status === 'inactive' ? 'inactive' : 'active', recordedAt: obj(r.meta).lastUpdated || null,
          provenance, severity: null, reaction: null });
      } else if (c.kind === 'Consent') {
        const category11 = (r.category || []).some((x) => (x.coding || []).some((y) => y.code === '11'));
        const status = { active: 'active', inactive: 'inactive', rejected: 'inactive' }[r.status];
        if (!category11 || !status) continue;
        const concepts = (obj(r.provision).code || []).filter((x) => codingOf(x, SNOMED));
        const concept = concepts.find((x) => codingOf(x, SNOMED).system === SNOMED) || concepts[0];
        const code = codingOf(concept, SNOMED);
        out.TREATMENT_LIMITATIONS.push({ id: r.id, code, status, provenance, decidedAt: r.dateTime || null,
          description: String(concept.text || code.display || code.code) });
      }
    }
  }
  return out;
}

function mapMedication(source) {
  return (answers) => {
    const params = answers[0].body.parameter || [];
    const bundle = (params.find((p) => p.name === 'medication') || {}).resource || {};
    const entries = bundle.entry || [];
    const resources = new Map(entries.map((e) => [e.fullUrl, e.resource]));
    const composition = entries.find((e) => e.resource.resourceType === 'Composition');
    const pllRefs = new Set();
    const pending = [...((composition && composition.resource.section) || [])];
    while (pending.length) {
      const section = pending.pop();
      pending.push(...(section.section || []));
      if (section.title === 'PLL info' || obj(section.code).text === 'PLL info') {
        for (const ref of section.entry || []) pllRefs.add(ref.reference);
      }
    }
    const items = [];
    for (const e of entries) {
      const s = e.resource;
      if (s.resourceType !== 'MedicationStatement' || s.status === 'entered-in-error') continue;
      const inPll = pllRefs.has(e.fullUrl);
      const prescriptionId = identifierByType(s, 'prescriptionID');
      if (source === 'pll' ? !inPll : (inPll || !prescriptionId)) continue;
      const pllId = identifierByType(s, 'PLL');
      const recordId = (inPll ? pllId : prescriptionId) || e.fullUrl;
      const concept = s.medicationCodeableConcept
        || (resources.get(obj(s.medicationReference).reference) || {}).code;
      const code = codingOf(concept, ATC) || { system: '', code: '', display: null };
      const dosage = first(s.dosage);
      const text = dosage && typeof dosage.text === 'string' ? dosage.text.trim() : '';
      const provenance = prov(source, recordId);
      items.push({ id: `${source}:${recordId}`, code, name: str(obj(concept).text) || code.display || code.code,
        status: String(s.status || 'unknown'), dosage: text ? { text } : null,
        started: dateOf(obj(s.effectivePeriod).start || s.effectiveDateTime), ended: dateOf(obj(s.effectivePeriod).end),
        prescriptionId, pllId, treatmentId: identifierByType(s, 'treatmentID'), conflicts: [],
        provenance, provenances: [provenance] });
    }
    return { MEDICATIONS: items };
  };
}

function mapProevesvar(answers) {
  const observations = new Map();
  const reports = new Map();
  for (const { body } of answers) {
    for (const e of body.entry || []) {
      const r = e.resource;
      if (r.resourceType === 'Observation') {
        observations.set(`Observation/${r.id}`, r);
        if (e.fullUrl) observations.set(e.fullUrl, r);
      } else if (r.resourceType === 'DiagnosticReport' && !reports.has(r.id)) reports.set(r.id, r);
    }
  }
  const labs = [];
  for (const r of reports.values()) {
    const results = [];
    const walk = (refs, level, path) => {
      for (const ref of refs || []) {
        const o = observations.get(ref.reference);
        if (!o || path.has(o.id) || level > 8) continue;
        const q = o.valueQuantity;
        const interpretation = codingOf(first(o.interpretation), INTERPRETATION);
        results.push({ code: codingOf(o.code, NLK) || { system: '', code: '', display: null },
          value: q ? String(q.value) : textOf(o.valueCodeableConcept), unit: q ? (q.unit || q.code || null) : null,
          abnormal: !!interpretation && ['H', 'L', 'HH', 'LL', 'A', 'AA'].includes(interpretation.code.toUpperCase()),
          level });
        walk(o.hasMember, level + 1, new Set([...path, o.id]));
      }
    };
    walk(r.result, 0, new Set());
    labs.push({ id: r.id, code: codingOf(r.code, NLK) || { system: '', code: '', display: null },
      category: codingOf(first(r.category), CATEGORY_8202), issuedAt: r.issued || null,
      effectiveAt: r.effectiveDateTime || null, results, provenance: prov('proevesvar', r.id) });
  }
  return { LAB_RESULTS: labs };
}

const MAPPERS = { municipal: mapMunicipal, kjernejournal: mapKjernejournal, pll: mapMedication('pll'),
  eresept: mapMedication('eresept'), proevesvar: mapProevesvar };

// -- cross-source logic (ports of schema/alerts.py, schema/ordering.py, medication linking) ------

const rank = (status) => ({ active: 0, planned: 1, 'on-hold': 2 }[status] ?? 9);
const byKeys = (key) => (a, b) => {
  const x = key(a); const y = key(b);
  for (let i = 0; i < x.length; i += 1) { if (x[i] < y[i]) return -1; if (x[i] > y[i]) return 1; }
  return 0;
};

function buildAlerts(limitations, critical) {
  const alerts = [];
  for (const t of limitations) {
    if (t.status !== 'active') continue;
    alerts.push([HLR_MINUS.has(t.code.code) ? 0 : 1, -ts(t.decidedAt), { kind: 'TREATMENT_LIMITATION', priority: 1,
      title: t.code.display || t.description, provenance: t.provenance }]);
  }
  for (const c of critical) {
    if (c.status !== 'active') continue;
    const [priority, kind] = c.type === 'ALLERGY' ? [['severe', 'high'].includes(c.severity) ? 2 : 5, 'ALLERGY']
      : c.type === 'CRITICAL_CONDITION' ? [3, 'CRITICAL_CONDITION']
        : c.type === 'ANAESTHESIA_COMPLICATION' ? [4, 'ANAESTHESIA_COMPLICATION'] : [6, 'OTHER_CRITICAL'];
    alerts.push([priority, -ts(c.recordedAt), { kind, priority,
      title: kind === 'ALLERGY' ? `CAVE ${c.description}` : c.description, provenance: c.provenance }]);
  }
  return alerts.sort(byKeys((a) => [a[0], a[1]])).map((a) => a[2]);
}

const SOURCE_ORDER = ['pll', 'eresept', 'municipal'];
const sourceRank = (m) => { const i = SOURCE_ORDER.indexOf(m.provenance.source); return i < 0 ? 3 : i; };
function linkMedications(items) {
  const groups = [];
  for (const item of [...items].sort((a, b) => sourceRank(a) - sourceRank(b))) {
    let group = item.treatmentId ? groups.find((g) => g.some((m) => m.treatmentId === item.treatmentId)) : null;
    group = group || groups.find((g) => g.some((m) => (item.pllId && m.pllId === item.pllId)
      || (item.prescriptionId && m.prescriptionId === item.prescriptionId)));
    if (!group && item.provenance.source === 'municipal' && item.code.code) {
      const compatible = (g) => ['treatmentId', 'pllId', 'prescriptionId'].every((f) => {
        const known = new Set(g.map((m) => m[f]).filter(Boolean));
        return !item[f] || !known.size || known.has(item[f]);
      });
      const sameDrug = groups.filter((g) => compatible(g) && g.some((m) => m.code.code === item.code.code));
      const sameDay = sameDrug.filter((g) => item.started && g.some((m) => m.started === item.started));
      if (sameDay.length) group = sameDay.length === 1 ? sameDay[0] : null;
      else group = sameDrug.length === 1 ? sameDrug[0] : null;
    }
    if (group) group.push(item); else groups.push([item]);
  }
  const merged = groups.map((group) => {
    const base = group[0];
    if (group.length === 1) return base;
    const provenances = [];
    for (const p of group.flatMap((m) => m.provenances)) {
      if (!provenances.some((q) => q.source === p.source && q.recordId === p.recordId)) provenances.push(p);
    }
    provenances.sort((a, b) => sourceRank({ provenance: a }) - sourceRank({ provenance: b }));
    const pick = (f) => { const m = group.find((x) => x[f] != null); return m ? m[f] : null; };
    const conflicts = [];
    const compared = [['code', (m) => m.code.code || null, true],
      ['dosage', (m) => (m.dosage ? m.dosage.text.split(/\s+/).join(' ').toLowerCase() : null), true],
      ['status', (m) => m.status, false], ['started', (m) => m.started, false], ['ended', (m) => m.ended, false]];
    for (const [name, valueOf, withAdministrations] of compared) {
      const members = group.filter((m) => withAdministrations || m.provenance.source !== 'municipal');
      if (new Set(members.map(valueOf).filter((v) => v != null)).size > 1) conflicts.push(name);
    }
    return { ...base, provenance: provenances[0], provenances, dosage: pick('dosage'), started: pick('started'),
      conflicts };
  });
  return merged.sort(byKeys((m) => [m.status !== 'active' ? 1 : 0, m.name.toLowerCase(), m.id]));
}

// -- schema ----------------------------------------------------------------------------------------

const typeDefs = /* GraphQL */ `
  enum AlertKind { TREATMENT_LIMITATION ALLERGY CRITICAL_CONDITION ANAESTHESIA_COMPLICATION OTHER_CRITICAL }
  enum CriticalType { ALLERGY CRITICAL_CONDITION ANAESTHESIA_COMPLICATION TREATMENT_OR_IMPLANT OTHER }
  enum Category { CRITICAL_INFORMATION TREATMENT_LIMITATIONS MEDICATIONS LAB_RESULTS MUNICIPAL_SERVICES CONDITIONS DOCUMENTS }
  enum Status { OK EMPTY PARTIAL STALE TIMEOUT UNAVAILABLE INVALID DENIED RESTRICTED RESERVED BLOCKED }
  type Coding { system: String! code: String! display: String }
  type Provenance { source: String! recordId: String! }
  type Alert { kind: AlertKind! priority: Int! title: String! provenance: Provenance! }
  type TreatmentLimitation { id: String! code: Coding! description: String! status: String! decidedAt: String provenance: Provenance! }
  type CriticalInformation { id: String! type: CriticalType! code: Coding! description: String! status: String! severity: String reaction: String recordedAt: String provenance: Provenance! }
  type Dosage { text: String! }
  type Medication { id: String! code: Coding! name: String! status: String! dosage: Dosage started: String ended: String conflicts: [String!]! provenance: Provenance! provenances: [Provenance!]! }
  type LabResult { code: Coding! value: String unit: String abnormal: Boolean! level: Int! }
  type LabReport { id: String! code: Coding! category: Coding issuedAt: String effectiveAt: String results: [LabResult!]! provenance: Provenance! }
  type MunicipalService { id: String! code: Coding! status: String! started: String unit: String phone: String provenance: Provenance! }
  type Condition { id: String! code: Coding! clinicalStatus: String! onset: String provenance: Provenance! }
  type DocumentReference { id: String! title: String! date: String provenance: Provenance! }
  type SourceStatus { source: String! category: Category! status: Status! latencyMs: Float }
  type Patient {
    nin: String!
    alerts: [Alert!]!
    treatmentLimitations: [TreatmentLimitation!]!
    criticalInformation: [CriticalInformation!]!
    medications: [Medication!]!
    labResults(first: Int): [LabReport!]!
    municipalServices: [MunicipalService!]!
    conditions: [Condition!]!
    documents: [DocumentReference!]!
    sources: [SourceStatus!]!
  }
  type Query { patient(nin: String!): Patient }
`;

class PatientView {
  constructor(nin) {
    this.nin = nin;
    this.fetches = new Map();
    this.mapped = new Map();
    for (const [source, calls] of bySource) {
      const p = fetchSource(calls, nin);
      p.catch(() => {}); // awaited by the fields that need it
      this.fetches.set(source, p);
    }
  }

  source(source) {
    if (!this.mapped.has(source)) {
      this.mapped.set(source, this.fetches.get(source).then((f) => ({ ...f, items: MAPPERS[source](f.answers) })));
    }
    return this.mapped.get(source);
  }

  async items(category) {
    const sources = [...this.fetches.keys()].filter((s) => CATEGORIES[s].includes(category));
    const judged = await Promise.all(sources.map((s) => this.source(s)));
    return judged.flatMap((j) => j.items[category] || []);
  }
}

const resolvers = {
  Query: { patient: (_, { nin }) => new PatientView(nin) },
  Patient: {
    alerts: async (v) => buildAlerts(await v.items('TREATMENT_LIMITATIONS'), await v.items('CRITICAL_INFORMATION')),
    treatmentLimitations: async (v) => (await v.items('TREATMENT_LIMITATIONS'))
      .sort(byKeys((i) => [rank(i.status), -ts(i.decidedAt)])),
    criticalInformation: async (v) => (await v.items('CRITICAL_INFORMATION')).sort(byKeys((i) => [
      rank(i.status), ({ ALLERGY: 0, CRITICAL_CONDITION: 1, ANAESTHESIA_COMPLICATION: 2 })[i.type] ?? 5, -ts(i.recordedAt)])),
    medications: async (v) => linkMedications(await v.items('MEDICATIONS')),
    labResults: async (v, { first: n }) => {
      const labs = (await v.items('LAB_RESULTS')).sort(byKeys((i) => [-ts(i.issuedAt || i.effectiveAt)]));
      return n != null && n >= 0 ? labs.slice(0, n) : labs;
    },
    municipalServices: async (v) => (await v.items('MUNICIPAL_SERVICES')).sort(byKeys((i) => [rank(i.status), -ts(i.started)])),
    conditions: async (v) => (await v.items('CONDITIONS')).sort(byKeys((i) => [rank(i.clinicalStatus), -ts(i.onset)])),
    documents: async (v) => (await v.items('DOCUMENTS')).sort(byKeys((i) => [-ts(i.date)])),
    sources: async (v) => {
      const rows = [];
      for (const source of v.fetches.keys()) {
        const j = await v.source(source);
        for (const category of CATEGORIES[source]) {
          rows.push({ source, category, status: (j.items[category] || []).length ? 'OK' : 'EMPTY', latencyMs: j.latencyMs });
        }
      }
      return rows;
    },
  },
};

const yoga = createYoga({
  schema: createSchema({ typeDefs, resolvers }),
  graphqlEndpoint: '/graphql',
  graphiql: false,
  landingPage: false,
  logging: false,
});

const server = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"status":"ok"}');
    return;
  }
  yoga(req, res);
});
server.keepAliveTimeout = 75_000;
// LISTEN_FD: a bound socket handed over by the bench harness (no race for a free port)
if (process.env.LISTEN_FD) server.listen({ fd: Number(process.env.LISTEN_FD) });
else server.listen(Number(process.env.PORT || 8400), '127.0.0.1');
process.on('SIGTERM', () => { server.close(); dispatcher.close().finally(() => process.exit(0)); });
