// Live updates for the open patient: `patientUpdates` over graphql-transport-ws (the protocol
// Apollo Client and urql speak), written out here because the demo app has no bundler.
//
// The token goes in the connection_init payload (a browser cannot set headers on a WebSocket),
// with a DPoP proof of the handshake (htm GET, htu the /graphql URL with http(s) for ws(s)).
// An update says only which source and categories changed: the app asks `patient` again.
// When Kilde closes the socket (the token expired: 4403, a restart, the network), the app
// reconnects with a fresh token after a pause and asks again, since it may have missed a change.

const PROTOCOL = "graphql-transport-ws";
const UPDATES = `subscription Updates($nin: String!) {
  patientUpdates(nin: $nin) { source categories changedAt origin } }`;
const FATAL = new Set([4400, 4401, 4406, 4409, 4429]); // our mistakes: retrying will not help

/**
 * Watch one patient. `credentials()` gives `{ authorization, dpop }` for a new connection
 * (fresh token and proof); `onUpdate(update)` is called for each update, and with
 * `{ origin: "RECONNECTED" }` after a reconnect. Returns `stop()`.
 */
export function watchPatient(nin, credentials, onUpdate, onState = () => {}) {
  let socket = null;
  let stopped = false;
  let retry = 500;
  let connectedBefore = false;

  async function connect() {
    if (stopped) return;
    const url = new URL("/graphql", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    let payload;
    try {
      payload = await credentials(new URL("/graphql", window.location.href).href);
    } catch {
      schedule();
      return;
    }
    socket = new WebSocket(url.href, PROTOCOL);
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload }));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "connection_ack") {
        retry = 500;
        onState("live");
        socket.send(JSON.stringify({ id: "patient", type: "subscribe",
          payload: { query: UPDATES, variables: { nin } } }));
        if (connectedBefore) onUpdate({ origin: "RECONNECTED", categories: [] });
        connectedBefore = true;
      } else if (message.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (message.type === "next" && message.payload?.data?.patientUpdates) {
        onUpdate(message.payload.data.patientUpdates);
      } else if (message.type === "error" || message.type === "complete") {
        onState("off");
        stopped = true; // refused (no access) or ended: nothing more will come
        socket.close(1000);
      }
    };
    socket.onclose = (event) => {
      socket = null;
      if (stopped) return;
      if (FATAL.has(event.code)) {
        onState("off");
        return;
      }
      onState("reconnecting");
      schedule();
    };
  }

  function schedule() {
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  }

  connect();
  return function stop() {
    stopped = true;
    if (socket) socket.close(1000);
  };
}
