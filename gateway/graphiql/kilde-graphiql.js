// Kilde's GraphiQL start-up: the IDE against /graphql with the legevakt query ready, and in the
// demo a persona picker that fills the Authorization header (a vendor's developer pastes a
// HelseID token there instead). Everything loads from this server; nothing from a CDN.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("kilde-config").textContent);
  const el = (id) => document.getElementById(id);
  const fetcher = GraphiQL.createFetcher({ url: new URL("/graphql", location.href).href });
  const root = ReactDOM.createRoot(el("graphiql"));
  const state = {
    query: config.query,
    variables: JSON.stringify(config.variables, null, 2),
    headers: JSON.stringify({ Authorization: "Bearer <paste a HelseID access token>" }, null, 2),
    generation: 0,
  };

  function render() {
    root.render(React.createElement(GraphiQL, {
      key: String(state.generation), // a new token: GraphiQL takes the new headers
      fetcher,
      query: state.query,
      variables: state.variables,
      headers: state.headers,
      shouldPersistHeaders: false, // a token never goes to localStorage
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      onEditQuery: (value) => { state.query = value; },
      onEditVariables: (value) => { state.variables = value; },
      onEditHeaders: (value) => { state.headers = value; },
    }));
  }

  async function json(url, init) {
    const response = await fetch(url, init);
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    return response.json();
  }

  function option(value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }

  async function usePersona(event) {
    if (event) event.preventDefault();
    const persona = el("kilde-persona").value;
    const patient = el("kilde-patient").value;
    const kind = el("kilde-persona").selectedOptions[0].dataset.kind;
    try {
      const { token } = await json("/_demo/token", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ persona, patient: kind === "privacy_officer" ? null : patient }),
      });
      state.headers = JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2);
      let variables = {};
      try { variables = JSON.parse(state.variables || "{}"); } catch { variables = {}; }
      state.variables = JSON.stringify({ ...variables, nin: patient }, null, 2);
      state.generation += 1;
      render();
      el("kilde-status").textContent = `Authorization filled in for ${persona}.`;
      document.body.dataset.token = persona;
    } catch (err) {
      el("kilde-status").textContent = `No demo token: ${err.message}`;
    }
  }

  async function demoPicker() {
    let personas, patients;
    try {
      [personas, patients] = await Promise.all([json("/_demo/personas"),
        json("/_sandbox/patients")]);
    } catch {
      return false; // not the demo: no persona picker, the user brings a HelseID token
    }
    el("kilde-persona").replaceChildren(...personas.map((p) => {
      const o = option(p.key, `${p.key} – ${p.description}`);
      o.dataset.kind = p.kind;
      return o;
    }));
    el("kilde-patient").replaceChildren(...patients.map((p) =>
      option(p.nin, `${p.nin} · ${p.name} · ${p.tags.join(", ")}`)));
    el("kilde-persona").value = "legevakt-lege";
    el("kilde-patient").value = config.variables.nin;
    el("kilde-bar").addEventListener("submit", usePersona);
    el("kilde-bar").hidden = false;
    return true;
  }

  // In the demo the legevakt physician is signed in from the start, so the legevakt query runs
  // as it stands; elsewhere GraphiQL waits for a pasted token.
  demoPicker()
    .then((demo) => (demo ? usePersona(null) : render()))
    .finally(() => { document.body.dataset.ready = "true"; });
})();
