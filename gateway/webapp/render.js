// Kilde legevakt app: pure rendering from GraphQL answers to DOM nodes (no fetching here).
// Text goes in through textContent only, never innerHTML: upstream data is never markup.

export const SOURCE_NAMES = {
  municipal: "Kommunal journal",
  kjernejournal: "Kjernejournal",
  pll: "Pasientens legemiddelliste",
  eresept: "e-resept",
  proevesvar: "Pasientens prøvesvar",
  persontjenesten: "Folkeregisteret (Persontjenesten)",
};

const STATUS = {
  OK: ["OK", "ok"], EMPTY: ["Ingen data", "neutral"], PARTIAL: ["Delvis", "warn"],
  STALE: ["Foreldet", "warn"], TIMEOUT: ["Tidsavbrudd", "bad"],
  UNAVAILABLE: ["Utilgjengelig", "bad"], INVALID: ["Ugyldig svar", "bad"],
  DENIED: ["Ingen tilgang", "warn"], RESTRICTED: ["Sperret", "warn"],
  RESERVED: ["Reservert", "warn"], BLOCKED: ["Blokkert", "warn"],
};
// worst first: the badge of a source shows its worst category
const SEVERITY = ["TIMEOUT", "UNAVAILABLE", "INVALID", "BLOCKED", "RESTRICTED", "RESERVED",
  "DENIED", "PARTIAL", "STALE", "OK", "EMPTY"];

export const CATEGORY_NAMES = {
  TREATMENT_LIMITATIONS: "Behandlingsavklaringer", CRITICAL_INFORMATION: "Kritisk informasjon",
  MEDICATIONS: "Legemidler", LAB_RESULTS: "Prøvesvar", MUNICIPAL_SERVICES: "Kommunale tjenester",
  CONDITIONS: "Diagnoser", DOCUMENTS: "Dokumenter",
};
export const PURPOSES = {
  TREAT: "Behandling", ETREAT: "Øyeblikkelig hjelp", COC: "Saksbehandling/koordinering",
  BTG: "Nødtilgang",
};
const ALERT_KINDS = {
  TREATMENT_LIMITATION: "Behandlingsavklaring", ALLERGY: "CAVE / overfølsomhet",
  CRITICAL_CONDITION: "Kritisk tilstand", ANAESTHESIA_COMPLICATION: "Anestesikomplikasjon",
  OTHER_CRITICAL: "Kritisk informasjon",
};
const CODE_SYSTEMS = {
  "urn:oid:2.16.578.1.12.4.1.1.7170": "ICPC-2", "urn:oid:2.16.578.1.12.4.1.1.7110": "ICD-10",
  "http://snomed.info/sct": "SNOMED CT",
};
const SERVICE_STATUS = { active: "Pågående", completed: "Avsluttet", planned: "Vedtatt" };
// FHIR statuses of a medication record and a condition, in Norwegian (the code as a tooltip)
const RECORD_STATUS = { active: "aktiv", completed: "avsluttet", stopped: "seponert",
  "on-hold": "pause", cancelled: "avbrutt", "entered-in-error": "feilregistrert",
  intended: "planlagt", draft: "utkast", unknown: "ukjent status" };
const CLINICAL_STATUS = { active: "aktiv", recurrence: "tilbakefall", relapse: "tilbakefall",
  inactive: "inaktiv", remission: "i remisjon", resolved: "over" };
// why an access was refused, in the citizen's and the privacy officer's words
const REFUSALS = { CARE_RELATIONSHIP_MISSING: "uten behandlingsrelasjon",
  ATTEST_EXPIRED: "attesten var utløpt", ATTEST_INVALID: "ugyldig attest",
  PATIENT_BLOCKED_REQUESTER: "pasienten har blokkert", PATIENT_RESERVED: "pasienten har reservert seg",
  MUNICIPAL_BORDER: "annen kommune", RESTRICTED_NEEDS_EMERGENCY: "sperret",
  PURPOSE_MISSING: "formål mangler", PURPOSE_NOT_PERMITTED: "formålet gir ikke tilgang",
  PROFESSION_NOT_PERMITTED: "yrket gir ikke tilgang", CATEGORY_NOT_PERMITTED: "opplysningene er ikke tillatt",
  SCOPE_MISSING: "mangler tilgang (scope)", NOT_SELF: "ikke egne opplysninger",
  ACCESS_LOG_NOT_PERMITTED: "ikke tilgang til loggen", PRINCIPAL_UNKNOWN: "ukjent bruker",
  SECURITY_LABEL_DENIED: "skjermet", SECURITY_LABEL_RESTRICTED: "skjermet" };
const CONFLICTS = { dosage: "dosering", status: "status", started: "startdato",
  ended: "sluttdato", code: "legemiddel", severity: "alvorlighet", reaction: "reaksjon" };
// statuses that say "something is there that this answer does not show"
const FAILED = ["TIMEOUT", "UNAVAILABLE", "INVALID", "PARTIAL", "STALE", "RESERVED", "BLOCKED",
  "DENIED"];

/** h("p", {class: "x"}, "text", child): an element; null/false children are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const pad = (n) => String(n).padStart(2, "0");
export function date(value) {
  if (!value) return "";
  const d = new Date(value.length === 10 ? `${value}T12:00:00` : value);
  return `${pad(d.getDate())}.${pad(d.getMonth() + 1)}.${d.getFullYear()}`;
}
export function dateTime(value) {
  if (!value) return "";
  const d = new Date(value);
  return `${date(value)} kl. ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
export const formatNin = (nin) => `${nin.slice(0, 6)} ${nin.slice(6)}`;

/** A Norwegian word for a code, the code itself as the tooltip (`title`). */
function worded(words, code, attrs = {}) {
  if (!code) return "";
  return h("span", { ...attrs, title: code, "data-code": code }, words[code] || code);
}

/** How old data is, in words: "45 s", "3 min", "2 t". */
export function age(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} t`;
}

/** Parts joined into one sentence: empty parts left out, one full stop at the end. */
export function sentence(...parts) {
  const text = parts.filter((p) => p !== null && p !== undefined && String(p).trim() !== "")
    .map((p) => String(p).trim()).join(" ").replace(/\s+([,.:;])/g, "$1");
  if (!text) return "";
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export function statusBadge(status) {
  const [label, tone] = STATUS[status] || [status, "neutral"];
  // Norwegian on screen; the status code is the tooltip (and data-status for tests and tools)
  return h("span", { class: `badge badge-${tone}`, "data-status": status, title: status }, label);
}

/** "Oslo kommunes journal" for a municipal store, else the source's name. */
export function storeName(source, municipality, municipalities) {
  if (!municipality) return SOURCE_NAMES[source] || source;
  const name = municipalities[municipality];
  return name ? `${name} kommunes journal` : `Kommunal journal ${municipality}`;
}

const notAsked = (r) => r.status === "DENIED" && r.reason === "MUNICIPAL_BORDER";
// the registry could not say where the patient lives: other stores may hold records
const HOME_UNKNOWN = ["HOME_MUNICIPALITY_UNKNOWN", "NOT_IN_REGISTRY", "NO_HOME_RECORDED",
  "ADDRESS_PROTECTED"];
const homeUnknown = (r) => HOME_UNKNOWN.includes(r.reason);

function sourceLabel(prov, municipalities) {
  const name = SOURCE_NAMES[prov.source] || prov.source;
  if (!prov.municipality) return name;
  return `${name} · ${municipalities[prov.municipality] || "kommune"} ${prov.municipality}`;
}

/** One "Kilde: ..." tag per provenance. */
function sources(provs, municipalities) {
  return h("span", { class: "srcs" }, h("span", { class: "visually-hidden" }, "Kilde: "),
    provs.map((p) => h("span", { class: `src src-${p.source}`, "data-source": p.source },
      sourceLabel(p, municipalities))));
}

function worst(statuses) {
  return statuses.slice().sort((a, b) => SEVERITY.indexOf(a) - SEVERITY.indexOf(b))[0];
}

/** Sources (with their status) that did not answer fully for these categories; stores not
    asked and withheld items have notes of their own. */
function gaps(rows, categories) {
  const bad = rows.filter((r) => categories.includes(r.category) && FAILED.includes(r.status)
    && !notAsked(r) && !homeUnknown(r));
  const bySource = new Map();
  for (const r of bad) bySource.set(r.source, worst([r.status, bySource.get(r.source) || "EMPTY"]));
  return [...bySource].map(([source, status]) => ({ source, status }));
}

/** What these categories' answer does not show, said plainly: failures, stores not asked,
    items withheld that nødtilgang may open. Never silent (docs/architecture.md, principle 4). */
function gapNote(rows, categories, municipalities = {}) {
  const mine = rows.filter((r) => categories.includes(r.category));
  const missing = gaps(rows, categories);
  const stores = [...new Map(mine.filter(notAsked).map((r) => [r.municipality || r.source, r]))
    .values()];
  const withheld = [...new Set(mine.filter((r) => r.status === "RESTRICTED").map((r) => r.source))];
  return [
    missing.length ? h("p", { class: "gap", "data-gap": missing.map((m) => m.source).join(" ") },
      "Kan være ufullstendig: ",
      missing.map((m, i) => [i ? ", " : "", `${SOURCE_NAMES[m.source] || m.source} `,
        statusBadge(m.status)])) : null,
    stores.map((r) => h("p", { class: "gap not-asked", "data-testid": "not-asked",
      "data-municipality": r.municipality || "" },
    `${storeName(r.source, r.municipality, municipalities)} ble ikke spurt (ingen avtale).`)),
    mine.some(homeUnknown) ? h("p", { class: "gap home-unknown", "data-testid": "home-unknown" },
      mine.some((r) => r.reason === "ADDRESS_PROTECTED")
        ? "Adressen er beskyttet: hjemkommunen vises ikke, og andre kommuners journaler kan ha "
          + "opplysninger."
        : "Hjemkommunen er ukjent: andre kommuners journaler kan ha opplysninger.") : null,
    withheld.length ? h("p", { class: "withheld", "data-testid": "withheld",
      "data-sources": withheld.join(" ") }, "Skjult: nødtilgang kan vise mer",
    ` (${withheld.map((s) => SOURCE_NAMES[s] || s).join(", ")}).`) : null,
  ];
}

function section(id, title, rows, categories, municipalities, body) {
  return h("section", { class: "card", id, "aria-labelledby": `${id}-h` },
    h("h2", { id: `${id}-h` }, title), gapNote(rows, categories, municipalities), body);
}

const empty = (text = "Ingen registrert.") => h("p", { class: "empty" }, text);

export function renderSourceBar(rows, municipalities = {}) {
  const order = Object.keys(SOURCE_NAMES);
  const bySource = new Map();  // a store not asked is an entry of its own
  for (const r of rows) {
    const key = notAsked(r) && r.municipality ? `${r.source}:${r.municipality}` : r.source;
    if (!bySource.has(key)) bySource.set(key, []);
    bySource.get(key).push(r);
  }
  const rank = (key) => order.indexOf(key.split(":")[0]) * 2 + (key.includes(":") ? 1 : 0);
  const names = [...bySource.keys()].sort((a, b) => rank(a) - rank(b));
  return h("section", { class: "sources", id: "sources", "aria-labelledby": "sources-h" },
    h("h2", { id: "sources-h" }, "Kilder i dette svaret"),
    h("ul", { class: "source-list" }, names.map((key) => {
      const list = bySource.get(key);
      const [name, store] = key.split(":");
      const status = worst(list.map((r) => r.status));
      const latency = Math.max(...list.map((r) => r.latencyMs || 0));
      // a STALE answer is the last good one from the cache: how old it is matters, not how
      // fast the cache answered (ageSeconds: since the source gave it, i.e. the entry's time)
      const stale = list.filter((r) => r.status === "STALE" && r.ageSeconds != null);
      const staleAge = stale.length ? Math.max(...stale.map((r) => r.ageSeconds)) : null;
      // OK next to EMPTY is no news; anything else that differs per category is spelled out
      const mixed = new Set(list.map((r) => (r.status === "EMPTY" ? "OK" : r.status))).size > 1;
      return h("li", { class: `source source-${STATUS[status]?.[1] || "neutral"}`,
        "data-source": name, "data-status": status, "data-municipality": store || null },
      h("span", { class: "source-name" }, storeName(name, store, municipalities)),
      statusBadge(status),
      store ? h("span", { class: "source-detail" }, "Ikke spurt: ingen avtale") : null,
      staleAge !== null
        ? h("span", { class: "source-age", "data-age-seconds": Math.round(staleAge),
          title: "Siste svar fra kilden, fra hurtiglageret" }, `hentet for ${age(staleAge)} siden`)
        : h("span", { class: "source-latency" }, latency ? `${Math.round(latency)} ms` : ""),
      list.some((r) => r.fromCache) ? h("span", { class: "source-cache" }, "fra hurtiglager") : null,
      mixed ? h("span", { class: "source-detail" },
        list.map((r) => `${CATEGORY_NAMES[r.category] || r.category}: ${STATUS[r.status]?.[0] || r.status}`)
          .join(" · ")) : null);
    })));
}

const decisionOf = (limitations, id, prov) =>
  limitations.find((t) => t.id === id && t.provenance.source === prov.source);

/** The banner above the decisions when sources disagree: each decision, its source, its date,
    newest first. Neither is preferred: the clinician must clarify. */
function renderConflict(alert, limitations, municipalities) {
  const decisions = alert.provenances.map((prov, i) => ({ prov,
    tl: decisionOf(limitations, alert.itemIds[i], prov) }));
  return h("li", { class: "alert alert-conflict", "data-kind": "CONFLICT", "data-testid": "conflict",
    role: "alert" },
  h("p", { class: "alert-kind" }, "Motstridende behandlingsavklaringer"),
  h("h3", { class: "alert-title" }, "Kildene er uenige: avklar før du handler"),
  h("ul", { class: "conflict-list" }, decisions.map(({ prov, tl }) => h("li", {
    "data-source": prov.source },
  h("strong", {}, sourceLabel(prov, municipalities)), ": ",
  tl ? [tl.decidedAt ? `${date(tl.decidedAt)} ` : "", tl.code?.display || tl.description]
    : prov.recordId))),
  sources(alert.provenances, municipalities));
}

function renderAlert(alert, limitations, municipalities) {
  if (alert.kind === "CONFLICT") return renderConflict(alert, limitations, municipalities);
  const hlr = alert.kind === "TREATMENT_LIMITATION" && alert.meaning === "HLR_MINUS";
  const tl = decisionOf(limitations, alert.itemId, alert.provenance);
  const disputed = (alert.conflictsWith || []).length > 0;
  const tone = hlr ? "hlr" : alert.kind === "TREATMENT_LIMITATION" ? "limit"
    : alert.priority <= 3 ? "critical" : "info";
  return h("li", { class: `alert alert-${tone}${disputed ? " alert-disputed" : ""}`,
    "data-kind": alert.kind, "data-testid": hlr ? "hlr-minus" : null },
  h("p", { class: "alert-kind" }, hlr ? "HLR-minus" : ALERT_KINDS[alert.kind] || alert.kind),
  h("h3", { class: "alert-title" }, hlr ? "Ikke start hjerte-lunge-redning" : alert.title),
  disputed ? h("p", { class: "alert-disputed-note", "data-testid": "disputed" },
    "Motstrid: en annen kilde har en annen beslutning (se over).") : null,
  alert.detail && alert.detail !== alert.title ? h("p", { class: "alert-detail" }, alert.detail) : null,
  tl && (tl.decidedAt || tl.decidedBy || tl.reason || tl.validUntil) ? h("p", { class: "alert-meta" },
    [tl.decidedAt || tl.decidedBy ? sentence("Besluttet", tl.decidedAt ? date(tl.decidedAt) : "",
      tl.decidedBy ? `av ${tl.decidedBy}` : "") : "",
    tl.reason ? sentence(`Begrunnelse: ${tl.reason}`) : "",
    tl.validUntil ? sentence(`Gyldig til ${date(tl.validUntil)}`) : ""].filter(Boolean).join(" "))
    : null,
  sources(alert.provenances?.length ? alert.provenances : [alert.provenance], municipalities));
}

export function renderAlerts(patient, rows, municipalities) {
  const alerts = patient.alerts || [];
  const cats = ["TREATMENT_LIMITATIONS", "CRITICAL_INFORMATION"];
  const unsure = rows.some((r) => cats.includes(r.category) && !["OK", "EMPTY"].includes(r.status));
  return h("section", { class: "alerts", id: "alerts", "aria-labelledby": "alerts-h" },
    h("h2", { id: "alerts-h", class: "visually-hidden" }, "Varsler og kritisk informasjon"),
    alerts.length
      ? h("ul", { class: "alert-list" },
        alerts.map((a) => renderAlert(a, patient.treatmentLimitations || [], municipalities)))
      : h("p", { class: "alert-none" }, unsure
        ? "Ingen behandlingsavklaringer eller kritisk informasjon vist – se under hva som mangler."
        : "Ingen behandlingsavklaringer eller kritisk informasjon funnet."),
    gapNote(rows, cats, municipalities));
}

export function renderServices(items, rows, municipalities) {
  return section("services", "Kommunale tjenester", rows, ["MUNICIPAL_SERVICES"], municipalities,
    items.length ? h("ul", { class: "items" }, items.map((s) => h("li", { class: "item" },
      h("p", { class: "item-title" }, s.code.display || s.code.code,
        worded(SERVICE_STATUS, s.status, { class: `pill pill-${s.status}` })),
      s.description ? h("p", { class: "item-sub" }, s.description) : null,
      h("p", { class: "item-contact" },
        h("span", { class: "unit" }, s.unit || "Ansvarlig enhet ukjent"),
        s.phone ? [" · Tlf. ", h("a", { href: `tel:${s.phone.replace(/\s/g, "")}`, class: "phone" }, s.phone)] : null),
      h("p", { class: "item-sub" }, s.started ? `Fra ${date(s.started)}` : "",
        s.ended ? ` til ${date(s.ended)}` : ""),
      sources([s.provenance], municipalities)))) : empty());
}

export function renderMedications(items, rows, municipalities) {
  return section("medications", "Legemidler", rows, ["MEDICATIONS"], municipalities,
    items.length ? h("ul", { class: "items" }, items.map((m) => h("li", { class: "item" },
      h("p", { class: "item-title" }, m.name),
      h("p", { class: "item-sub" }, [m.dosage?.text, m.reason?.display ? `mot ${m.reason.display}` : null,
        m.started ? `fra ${date(m.started)}` : null].filter(Boolean).join(" · ")),
      m.conflicts.length ? h("p", { class: "conflict" }, "Kildene er uenige om ",
        m.conflicts.map((c) => CONFLICTS[c] || c).join(", "), ": kontroller.") : null,
      m.conflicts.length && (m.records || []).length > 1 ? h("ul", { class: "records",
        "data-testid": "records" }, m.records.map((r) => h("li", { "data-source": r.provenance.source },
        h("strong", {}, `${SOURCE_NAMES[r.provenance.source] || r.provenance.source}: `),
        [r.dosage?.text, r.status ? RECORD_STATUS[r.status] || r.status : null,
          r.started ? `fra ${date(r.started)}` : null,
          r.ended ? `til ${date(r.ended)}` : null].filter(Boolean).join(" · ")))) : null,
      sources(m.provenances, municipalities)))) : empty());
}

function flag(result) {
  if (!result.abnormal) return "";
  const code = result.interpretation?.code;
  return code === "H" || code === "HH" ? "Høy" : code === "L" || code === "LL" ? "Lav" : "Avvik";
}

export function renderLabs(reports, rows, municipalities) {
  return section("labs", "Prøvesvar", rows, ["LAB_RESULTS"], municipalities,
    reports.length ? reports.map((r) => h("article", { class: "lab" },
      h("h3", {}, r.code.display || r.code.code,
        h("span", { class: "lab-when" }, ` ${dateTime(r.issuedAt || r.effectiveAt)}`)),
      h("table", { class: "lab-table" },
        h("caption", { class: "visually-hidden" }, `${r.code.display}, ${r.performer || ""}`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Analyse"),
          h("th", { scope: "col", class: "num" }, "Resultat"), h("th", { scope: "col" }, "Referanse"),
          h("th", { scope: "col" }, "Flagg"))),
        h("tbody", {}, r.results.map((x) => h("tr", { class: x.abnormal ? "abnormal" : null,
          "data-abnormal": x.abnormal ? "true" : "false" },
        h("th", { scope: "row", class: x.level > 0 ? "indent" : null }, x.code.display || x.code.code),
        h("td", { class: "num" }, x.value ? `${x.value}${x.unit ? ` ${x.unit}` : ""}` : ""),
        h("td", {}, x.referenceRange || ""),
        h("td", {}, x.abnormal ? h("span", { class: "flag", title: x.interpretation?.display || "" },
          flag(x)) : ""))))),
      h("p", { class: "item-sub" }, r.performer || ""),
      sources([r.provenance], municipalities))) : empty("Ingen prøvesvar."));
}

export function renderConditions(items, rows, municipalities) {
  return section("conditions", "Diagnoser", rows, ["CONDITIONS"], municipalities,
    items.length ? h("ul", { class: "items" }, items.map((c) => h("li", { class: "item" },
      h("p", { class: "item-title" }, c.code.display || c.code.code,
        h("span", { class: "code" }, ` ${CODE_SYSTEMS[c.code.system] || ""} ${c.code.code}`)),
      h("p", { class: "item-sub" }, c.onset ? `Siden ${date(c.onset)}` : "",
        c.clinicalStatus && c.clinicalStatus !== "active"
          ? [" (", worded(CLINICAL_STATUS, c.clinicalStatus), ")"] : ""),
      sources([c.provenance], municipalities)))) : empty());
}

/** The access log as a table: who, where, why, what, and whether it was an emergency. */
export function renderAccessLog(title, connection, intro, none) {
  const edges = connection.edges || [];
  return h("section", { class: "card log", id: "access-log", "aria-labelledby": "log-h" },
    h("h2", { id: "log-h" }, title),
    h("p", { class: "item-sub" }, intro, ` ${connection.totalCount} oppslag.`),
    edges.length ? h("table", { class: "log-table" },
      h("caption", { class: "visually-hidden" }, title),
      h("thead", {}, h("tr", {}, ["Tidspunkt", "Hvem", "Hvor", "Formål", "Opplysninger"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, edges.map(({ node: e }) => h("tr", { class: e.emergency ? "emergency" : null,
        "data-purpose": e.purposeOfUse || "" },
      h("td", {}, dateTime(e.time)),
      h("th", { scope: "row" }, e.who || "Ukjent", e.profession ? h("span", { class: "item-sub block" }, e.profession) : null),
      h("td", { class: "log-where" }, e.pointOfCare || "", e.organisation && e.organisation !== e.pointOfCare
        ? h("span", { class: "item-sub block" }, e.organisation) : null),
      h("td", {}, PURPOSES[e.purposeOfUse] || e.purposeOfUse || "",
        e.emergency ? h("span", { class: "badge badge-warn block" }, "Nødtilgang") : null,
        e.emergencyReason ? h("span", { class: "item-sub block" }, `«${e.emergencyReason}»`) : null,
        e.outcome !== "DELIVERED" ? h("span", { class: "item-sub block" }, "Avvist",
          e.reason ? [" (", worded(REFUSALS, e.reason), ")"] : "") : null),
      h("td", {}, e.categories.map((c) => CATEGORY_NAMES[c.toUpperCase()] || c).join(", "))))))
      : empty(none));
}

/** The status line: "fra alle kilder" only when the answer's completeness summary says every
    source answered completely; otherwise what is missing, per source or store. */
export function summaryLine(ms, completeness, municipalities) {
  const patients = completeness?.patients || [];
  if (completeness?.complete === true) return `Svar på ${ms} ms fra alle kilder.`;
  const parts = new Map();
  for (const gap of patients.flatMap((p) => p.incomplete)) {
    const who = storeName(gap.source, gap.reason === "MUNICIPAL_BORDER" ? gap.municipality : null,
      municipalities);
    const what = gap.reason === "MUNICIPAL_BORDER" ? (gap.status === "RESTRICTED"
      ? "ikke spurt, nødtilgang kan spørre" : "ikke spurt (ingen avtale)")
      : gap.reason === "ADDRESS_PROTECTED" ? "adressen er beskyttet"
      : HOME_UNKNOWN.includes(gap.reason) ? "hjemkommunen er ukjent"
      : gap.status === "RESTRICTED" ? "skjult, nødtilgang kan vise mer"
        : gap.reason === "FRESH_REFUSED" ? "fra hurtiglager (ferske data avvist)"
          : (STATUS[gap.status]?.[0] || gap.status).toLowerCase();
    parts.set(`${who}: ${what}`, true);
  }
  if (!parts.size) return `Svar på ${ms} ms. Fullstendighet ukjent.`;
  return `Svar på ${ms} ms. Ikke fullstendig – ${[...parts.keys()].join("; ")}.`;
}
