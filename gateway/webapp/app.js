// Kilde legevakt app: pick a persona and a patient, get a token, ask the public GraphQL API.
// The token lives in memory only, bound to this page's DPoP key (dpop.js); no identity number
// ever goes into a URL.
import { createDpopKey, dpopFetcher } from "./dpop.js";
import { watchPatient } from "./live.js";
import {
  PURPOSES, SOURCE_NAMES, date, formatNin, h, renderAccessLog, renderAlerts, renderConditions,
  renderLabs, renderMedications, renderServices, renderSourceBar, summaryLine,
} from "./render.js";

const PATIENT_QUERY = `query Legevakt($nin: String!, $reason: String, $fresh: Boolean) {
  me { kind name professionText pointOfCareName purposeOfUse }
  patient(nin: $nin, emergencyReason: $reason, fresh: $fresh) {
    nin
    mayRecord
    alerts { kind priority title detail itemId itemIds meaning code { code display }
             provenance { source municipality recordId }
             provenances { source municipality recordId } conflictsWith { source } }
    treatmentLimitations { id description decidedAt decidedBy reason validUntil meaning
                           code { display } provenance { source } conflictsWith { source } }
    municipalServices { code { code display } status unit phone description started ended
                        provenance { source municipality } }
    medications { name dosage { text } reason { display } started conflicts
                  provenances { source municipality }
                  records { provenance { source } dosage { text } status started ended } }
    labResults(first: 3) { code { code display } issuedAt effectiveAt performer
      results { code { code display } value unit referenceRange abnormal level
                interpretation { code display } }
      provenance { source } }
    conditions { code { system code display } clinicalStatus onset
                 provenance { source municipality } }
    demographics { name birthDate age homeMunicipality homeMunicipalityName deceased
                   deceasedDate addressProtection }
    sources { source municipality category status reason latencyMs fromCache ageSeconds detail }
  }
}`;

const LOG_FIELDS = `totalCount edges { node { time who profession organisation pointOfCare
  purposeOfUse emergency emergencyReason categories outcome reason } }`;
const MY_LOG_QUERY = `query Innsyn { me { kind name } myAccessLog(first: 50) { ${LOG_FIELDS} } }`;
const LOG_QUERY = `query Tilgangslogg($nin: String!) {
  me { kind name } accessLog(nin: $nin, first: 50) { ${LOG_FIELDS} } }`;

// HLR-minus as the nursing home records it: SNOMED CT 304253006 "Not for resuscitation"
const RECORD_HLR = `mutation RegistrerHlrMinus($nin: String!, $input: TreatmentLimitationInput!) {
  recordTreatmentLimitation(nin: $nin, input: $input) { id meaning provenance { source municipality recordId } } }`;
const HLR_CODE = { code: "304253006", display: "Ikke gjenoppliv (HLR-minus)" };

const LAUNCH_QUERY = `query Launch($launch: String!) { launchContext(launch: $launch) { patient } }`;

const $ = (id) => document.getElementById(id);
const state = { personas: [], patients: [], municipalities: {}, token: null, current: null,
  launch: null, key: null, dpopFetch: null, me: null, pending: null, stopLive: null,
  updates: 0, reason: null, refreshing: null, ownWrite: null };

class AppError extends Error {}

function say(text, busy = false) {
  $("status").textContent = text;
  $("screen").setAttribute("aria-busy", busy ? "true" : "false");
}

async function json(url, init, send = fetch) {
  let response;
  try {
    response = await send(url, init);
  } catch {
    throw new AppError("Fikk ikke kontakt med Kilde. Kjører demoen?");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok && !body.data && !body.errors) {
    throw new AppError(body.error || `Kilde svarte ${response.status}.`);
  }
  return { status: response.status, body };
}

/** A token from the demo issuer, bound to this page's DPoP key (`jkt`) when it has one. */
async function mintToken(persona, patient) {
  const { body } = await json("/_demo/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ persona, patient, jkt: state.key?.jkt }),
  });
  return body.token;
}

/** The one way this app gets data: POST /graphql with a DPoP-bound token and a proof per
 * request, like any vendor app (a plain bearer token only where the browser has no Web Crypto,
 * i.e. not a secure context, which only the demo accepts). */
async function graphql(query, variables, headers = {}) {
  const started = performance.now();
  const init = { method: "POST", headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ query, variables }) };
  const send = state.dpopFetch
    ? (url, request) => state.dpopFetch(url, request, state.token)
    : (url, request) => fetch(url, { ...request, headers: { ...request.headers,
      authorization: `Bearer ${state.token}` } });
  const { status, body } = await json("/graphql", init, send);
  if (status === 401) throw new AppError("Ikke autentisert: tokenet ble ikke godtatt.");
  return { ...body, ms: Math.round(performance.now() - started) };
}

function denial(errors) {
  const e = (errors || []).find((x) => !String(x.extensions?.code).startsWith("UPSTREAM_"));
  if (!e) return "Kilde svarte uten data.";
  const what = { FORBIDDEN: "Ingen tilgang", AUDIT_UNAVAILABLE: "Tilgangsloggen er utilgjengelig",
    BAD_USER_INPUT: "Ugyldig forespørsel", UNAUTHENTICATED: "Ikke autentisert",
    RATE_LIMITED: "For mange forespørsler, prøv igjen om litt",
    QUERY_TOO_COMPLEX: "Spørringen er for stor", INTERNAL_SERVER_ERROR: "Feil i Kilde",
  }[e.extensions?.code] || "Kilde svarte med en feil";
  return `${what}: ${e.message}`;
}

function persona() { return state.personas.find((p) => p.key === $("persona").value); }
function patient() { return state.patients.find((p) => p.nin === $("patient").value); }

/** Who the patient is, from the population registry (Folkeregisteret): name, age, home
    municipality, deceased; said plainly when the registry does not know or did not answer. */
function demographicsLine(person, rows) {
  if (!person) {
    const row = rows.find((r) => r.category === "DEMOGRAPHICS");
    return h("p", { class: "patient-demo unknown", "data-testid": "demographics" },
      row && row.status === "EMPTY" ? "Ukjent i Folkeregisteret: hjemkommunen er ukjent."
        : "Folkeregisteret svarte ikke: hjemkommunen er ukjent.");
  }
  // a protected address (fortrolig / strengt fortrolig) is said to be protected, never guessed
  const home = person.addressProtection ? "beskyttet adresse (fortrolig)"
    : person.homeMunicipality
      ? `${person.homeMunicipalityName || state.municipalities[person.homeMunicipality] || "Kommune"}`
        + ` (${person.homeMunicipality})` : "ingen registrert bostedsadresse";
  return h("p", { class: "patient-demo", "data-testid": "demographics",
    "data-home": person.homeMunicipality || "" },
  person.age != null ? `${person.age} år` : "Alder ukjent",
  person.birthDate ? ` (født ${date(person.birthDate)})` : "",
  ` · Bor i ${home}`,
  person.deceased ? h("strong", { class: "deceased" },
    ` · Død${person.deceasedDate ? ` ${date(person.deceasedDate)}` : ""}`) : null);
}

function patientHead(pt, me, result, reason) {
  const data = result.data.patient;
  const restricted = data.sources.some((s) => s.status === "RESTRICTED"
    && s.reason !== "MUNICIPAL_BORDER");
  const person = data.demographics;
  return h("section", { class: "patient-head", "aria-labelledby": "patient-h" },
    h("div", { class: "patient-id" },
      h("h2", { id: "patient-h" }, person?.name || (pt ? pt.name : "Pasient")),
      h("p", { class: "patient-nin" }, `Fødselsnr. ${formatNin(data.nin)}`),
      demographicsLine(person, data.sources)),
    h("div", { class: "patient-who" },
      h("p", {}, [me.name, me.professionText || "uten helsepersonellautorisasjon",
        me.pointOfCareName].filter(Boolean).join(", ")),
      h("p", { class: "item-sub" }, `Formål: ${PURPOSES[me.purposeOfUse] || me.purposeOfUse || "–"}`,
        ` · svar på ${result.ms} ms`)),
    h("div", { class: "patient-actions" },
      reason ? h("p", { class: "emergency-used", role: "note" },
        "Nødtilgang brukt. Begrunnelsen er logget og vises for pasienten.") : null,
      restricted && !reason ? h("p", { class: "restricted-note" },
        "Noen opplysninger er sperret av pasienten.") : null,
      (result.data.patient.mayRecord || []).includes("TREATMENT_LIMITATIONS")
        ? h("button", { type: "button", id: "record-hlr", class: "btn", onclick: askHlr },
          "Registrer HLR-minus …") : null,
      h("button", { type: "button", id: "emergency", class: restricted && !reason
        ? "btn btn-danger" : "btn", onclick: askEmergency }, "Nødtilgang …")));
}

function showPatient(result, reason) {
  const pt = patient();
  const data = result.data.patient;
  const rows = data.sources;
  const m = state.municipalities;
  $("screen").replaceChildren(
    patientHead(pt, result.data.me, result, reason),
    renderAlerts(data, rows, m),
    renderSourceBar(rows, m),
    h("div", { class: "grid" },
      renderServices(data.municipalServices, rows, m),
      renderMedications(data.medications, rows, m),
      renderLabs(data.labResults, rows, m),
      renderConditions(data.conditions, rows, m)));
  $("screen").dataset.view = "patient";
  say(summaryLine(result.ms, result.extensions?.completeness, m));
}

async function openPatient(reason = null) {
  const nin = $("patient").value;
  // "Ferske data": past the cache to the sources (rate-limited; over it, the cache answers)
  const result = await graphql(PATIENT_QUERY, { nin, reason, fresh: $("fresh").checked || null });
  if (!result.data?.patient) throw new AppError(denial(result.errors));
  state.me = result.data.me;
  showPatient(result, reason);
  state.reason = reason;
}

const CATEGORY_NAMES = { TREATMENT_LIMITATIONS: "behandlingsavklaringer",
  CRITICAL_INFORMATION: "kritisk informasjon", MEDICATIONS: "legemidler",
  LAB_RESULTS: "prøvesvar", MUNICIPAL_SERVICES: "kommunale tjenester",
  CONDITIONS: "diagnoser", DOCUMENTS: "dokumenter" };

/** Credentials for a new live connection: a fresh token for the open patient, and a DPoP
 * proof of the WebSocket handshake (GET on the /graphql URL) when the page has a key. */
function liveCredentials(personaKey, nin) {
  return async (url) => {
    state.token = await mintToken(personaKey, nin);
    if (!state.key) return { authorization: `Bearer ${state.token}` };
    return { authorization: `DPoP ${state.token}`,
      dpop: await state.key.proof("GET", url, state.token) };
  };
}

const OWN_WRITE_MS = 10000;  // how long an update matching this session's write is that write

/** Another session changed this patient's data: ask again, then say what changed. */
async function onUpdate(nin, update) {
  if ($("patient").value !== nin || $("screen").dataset.view !== "patient") return;
  if (state.refreshing) return; // one re-query at a time; it shows the latest anyway
  state.refreshing = (async () => {
    try {
      await openPatient(state.reason);
      state.updates += 1;
      $("screen").dataset.updates = String(state.updates);
      const own = state.ownWrite;
      if (own && Date.now() < own.until && update.source === own.source
          && (update.categories || []).every((c) => c === own.category)) {
        say(own.text);  // the news of this session's own write, already said
        return;
      }
      const what = (update.categories || []).map((c) => CATEGORY_NAMES[c] || c).join(", ");
      const from = update.source ? SOURCE_NAMES[update.source] || update.source : null;
      const time = new Date().toLocaleTimeString("nb-NO", { hour: "2-digit", minute: "2-digit" });
      say(update.origin === "RECONNECTED" || update.origin === "RESYNC"
        ? `Oppdatert ${time} etter brudd i direkteoppdateringen.`
        : `Oppdatert ${time}: ny informasjon${what ? ` (${what})` : ""}${from ? ` fra ${from}` : ""}.`);
    } catch (err) {
      say(err instanceof AppError ? err.message : "Oppdateringen feilet; åpne pasienten på nytt.");
    } finally {
      state.refreshing = null;
    }
  })();
}

function watch(personaKey, nin) {
  state.stopLive?.();
  state.updates = 0;
  state.stopLive = watchPatient(nin, liveCredentials(personaKey, nin),
    (update) => onUpdate(nin, update),
    (live) => { $("screen").dataset.live = live; });
}

async function openLog(kind) {
  const nin = $("patient").value;
  const result = kind === "citizen" ? await graphql(MY_LOG_QUERY, {})
    : await graphql(LOG_QUERY, { nin });
  const log = result.data?.myAccessLog || result.data?.accessLog;
  if (!log) throw new AppError(denial(result.errors));
  const pt = patient();
  const title = kind === "citizen" ? "Hvem har sett mine opplysninger"
    : `Tilgangslogg for ${pt ? pt.name : "pasienten"}`;
  const intro = kind === "citizen"
    ? `Innlogget som ${result.data.me.name || "innbygger"}. Alle oppslag i opplysningene dine, nyeste først.`
    : "Alle oppslag for pasienten, nyeste først.";
  const none = kind === "citizen" ? "Ingen har sett opplysningene dine ennå." : "Ingen oppslag.";
  $("screen").replaceChildren(renderAccessLog(title, log, intro, none));
  $("screen").dataset.view = "log";
  say(`Tilgangsloggen er hentet (${log.totalCount} oppslag).`);
}

async function run(task) {
  $("open").disabled = true;
  $("screen").dataset.view = "loading";
  try {
    await task();
    $("screen").focus({ preventScroll: true });
  } catch (err) {
    const message = err instanceof AppError ? err.message : "Noe gikk galt i appen.";
    $("screen").replaceChildren(h("p", { class: "error", role: "alert" }, message));
    $("screen").dataset.view = "error";
    say(message);
    if (!(err instanceof AppError)) console.error(err);
  } finally {
    $("open").disabled = false;
  }
}

/** SMART-style handover: an EPJ opened this app at ?launch=…&iss=… (POST /launch on Kilde).
 * The launch is taken out of the address at once (it is single-use), and honoured only when
 * `iss` is the Kilde this app talks to: a token is never sent anywhere else. */
function takeLaunch() {
  const params = new URLSearchParams(location.search);
  if (!params.has("launch")) return null;
  history.replaceState(null, "", location.pathname);
  if (params.get("iss") !== location.origin) {
    throw new AppError("Lenken fra EPJ peker til en annen Kilde enn denne; den brukes ikke.");
  }
  return params.get("launch");
}

/** The patient the EPJ handed over, read once as the signed-in user; then the patient picker
 * shows that patient. */
async function redeemLaunch(p) {
  state.token = await mintToken(p.key, null);
  const result = await graphql(LAUNCH_QUERY, { launch: state.launch });
  state.launch = null;
  const nin = result.data?.launchContext?.patient;
  if (!nin) throw new AppError(denial(result.errors));
  if (!state.patients.some((x) => x.nin === nin)) {
    $("patient").append(h("option", { value: nin }, formatNin(nin)));
  }
  $("patient").value = nin;
  $("patient").disabled = false;
}

async function open(event) {
  event.preventDefault();
  const p = persona();
  await run(async () => {
    say("Henter token og spør Kilde …", true);
    if (state.launch) await redeemLaunch(p);
    const bound = p.kind === "privacy_officer" ? null : $("patient").value;
    state.token = await mintToken(p.key, bound);
    say("Spør Kilde …", true);
    state.stopLive?.();
    state.stopLive = null;
    if (p.kind === "clinician") {
      await openPatient();
      watch(p.key, $("patient").value); // the screen follows changes made elsewhere
    } else await openLog(p.kind);
  });
}

function askEmergency() {
  const dialog = $("emergency-dialog");
  $("emergency-reason").value = "";
  dialog.returnValue = "";
  dialog.showModal();
}

function onEmergencyClose() {
  const dialog = $("emergency-dialog");
  const reason = $("emergency-reason").value.trim();
  if (dialog.returnValue !== "ok" || !reason) return;
  run(async () => {
    say("Spør Kilde med nødtilgang …", true);
    await openPatient(reason);
  });
}

/** "Registrer HLR-minus": the decision goes to the patient's municipal store through Kilde.
 * One Idempotency-Key per decision: sent again after an unknown outcome (the same decision,
 * same key), it cannot make a second record. */
function askHlr() {
  const pending = state.pending;
  $("hlr-decided-by").value = pending?.input.decidedBy || state.me?.name || "";
  $("hlr-reason").value = pending?.input.reason || "";
  $("hlr-dialog").returnValue = "";
  $("hlr-dialog").showModal();
}

function writeFailure(errors) {
  const e = (errors || [])[0];
  if (!e) return "Kilde svarte uten resultat.";
  const outcome = e.extensions?.writeOutcome;
  const what = { FORBIDDEN: "Ingen tilgang til å registrere", BAD_USER_INPUT: "Ugyldig registrering",
    UPSTREAM_REJECTED: "Den kommunale journalen avviste registreringen",
    AUDIT_UNAVAILABLE: "Tilgangsloggen er utilgjengelig" }[e.extensions?.code]
    || e.extensions?.code;
  const tail = outcome === "UNKNOWN"
    ? " Det er uvisst om beslutningen ble lagret: registrer den på nytt (den lagres ikke to ganger)."
    : " Ingenting ble lagret.";
  return `${what}: ${e.message}${tail}`;
}

function decision(decidedBy, reason) {
  const same = state.pending && state.pending.input.decidedBy === decidedBy
    && state.pending.input.reason === reason;
  if (!same) {
    state.pending = { key: crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`,
      input: { ...HLR_CODE, decidedBy, reason, decidedAt: new Date().toISOString() } };
  }
  return state.pending;
}

async function onHlrClose() {
  const dialog = $("hlr-dialog");
  const decidedBy = $("hlr-decided-by").value.trim();
  const reason = $("hlr-reason").value.trim();
  if (dialog.returnValue !== "ok" || !decidedBy || !reason) return;
  const { key, input } = decision(decidedBy, reason);
  const button = $("record-hlr");
  if (button) button.disabled = true;
  say("Registrerer HLR-minus i den kommunale journalen …", true);
  try {
    const result = await graphql(RECORD_HLR, { nin: $("patient").value, input },
      { "idempotency-key": key });
    const made = result.data?.recordTreatmentLimitation;
    if (!made) {
      const unknown = (result.errors || []).some((e) => e.extensions?.writeOutcome === "UNKNOWN");
      if (!unknown) state.pending = null;  // a definite outcome: nothing to send again
      throw new AppError(writeFailure(result.errors));
    }
    state.pending = null;
    const where = state.municipalities[made.provenance.municipality] || made.provenance.municipality;
    const done = `HLR-minus er registrert i kommunal journal (${where}) og vises øverst.`;
    // Kilde and the store's event store each announce this write to the open screen: the
    // screen asks again for them, but the confirmation stays (it is the same news).
    state.ownWrite = { text: done, source: "municipal", category: "TREATMENT_LIMITATIONS",
      until: Date.now() + OWN_WRITE_MS };
    await openPatient();
    say(done);
  } catch (err) {
    say(err instanceof AppError ? err.message : "Noe gikk galt i appen.");
    if (!(err instanceof AppError)) console.error(err);
  } finally {
    if ($("record-hlr")) $("record-hlr").disabled = false;
  }
}

async function setFault(event) {
  event.preventDefault();
  const source = $("fault-source").value;
  const mode = $("fault-mode").value;
  try {
    await json(`/_sandbox/faults/${source}`, {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ mode, latency_ms: 0 }),
    });
    say(`Sandkasse: ${SOURCE_NAMES[source]} er satt til «${$("fault-mode").selectedOptions[0].text}». `
      + "Åpne pasienten på nytt med «Ferske data»: et svar fra hurtiglageret skjuler feilen til det går ut.");
  } catch (err) {
    say(err.message);
  }
}

function personaLabel(p) {
  if (p.kind === "citizen") return "Innbygger (ser sin egen logg)";
  if (p.kind === "privacy_officer") return `Personvernombud – ${p.name}, ${p.pointOfCare}`;
  return `${p.profession || "Saksbehandler"} – ${p.name}, ${p.pointOfCare}`;
}

function onPersonaChange() {
  const kind = persona()?.kind;
  $("patient").previousElementSibling.textContent = kind === "citizen" ? "Du er"
    : kind === "privacy_officer" ? "Pasient (tilgangslogg)" : "Pasient";
}

async function start() {
  $("picker").addEventListener("submit", open);
  $("faults").addEventListener("submit", setFault);
  $("persona").addEventListener("change", onPersonaChange);
  $("emergency-dialog").addEventListener("close", onEmergencyClose);
  $("hlr-dialog").addEventListener("close", onHlrClose);
  if (window.isSecureContext && window.crypto?.subtle) {
    state.key = await createDpopKey();
    state.dpopFetch = dpopFetcher(state.key);
  }
  try {
    const [personas, patients, municipalities] = await Promise.all([
      json("/_demo/personas"), json("/_sandbox/patients"),
      json("/_sandbox/municipalities").catch(() => ({ body: [] })),
    ]);
    state.personas = personas.body;
    state.patients = patients.body;
    state.municipalities = Object.fromEntries(municipalities.body.map((m) => [m.number, m.name]));
  } catch (err) {
    say(`${err.message} Demo-innlogging finnes bare i demomodus.`);
    return;
  }
  $("persona").replaceChildren(...state.personas.map((p) => h("option", { value: p.key },
    personaLabel(p))));
  // name, number and municipality: what a clinician recognises (the scenario tags are the
  // sandbox's internal names, not shown)
  $("patient").replaceChildren(...state.patients.map((p) => h("option", { value: p.nin },
    [p.name, formatNin(p.nin), state.municipalities[p.municipality]].filter(Boolean).join(" · "))));
  onPersonaChange();
  document.body.dataset.ready = "true";
  try {
    state.launch = takeLaunch();
  } catch (err) {
    say(err.message);
    return;
  }
  $("patient").disabled = Boolean(state.launch);  // the EPJ chose the patient
  say(state.launch ? "Åpnet fra EPJ: velg rollen din (samme bruker som i EPJ) og trykk Åpne."
    : "Velg rolle og pasient, og trykk Åpne.");
}

start();
