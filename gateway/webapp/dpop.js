// DPoP in the browser (RFC 9449): the app proves, request by request, that it holds the key
// its token is bound to, so a token copied out of this page is useless anywhere else.
//
// One ECDSA P-256 key per page session, made by Web Crypto as non-extractable: the private
// half never leaves the browser's crypto store, not even to this script. The token is asked
// for with the key's RFC 7638 thumbprint (`jkt`), and every request carries a fresh proof
// (`htm`, `htu`, `iat`, `jti`, `ath` = hash of the token, and the server's nonce when asked).

const encoder = new TextEncoder();

function b64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const b64json = (value) => b64url(encoder.encode(JSON.stringify(value)));
const sha256 = async (text) => b64url(await crypto.subtle.digest("SHA-256", encoder.encode(text)));

/** The URL a proof names: absolute, without query or fragment (RFC 9449 §4.2). */
export function htuOf(url) {
  const u = new URL(url, window.location.href);
  u.search = "";
  u.hash = "";
  return u.href;
}

/**
 * A DPoP key for this page: `jkt` goes to the token issuer, `proof()` signs one request.
 * The key lives as long as the page; reloading makes a new one (and a new token).
 */
export async function createDpopKey() {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false,
    ["sign", "verify"]);
  const { crv, kty, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const jwk = { crv, kty, x, y }; // RFC 7638: the required members, in lexicographic order
  const jkt = await sha256(JSON.stringify(jwk));
  const header = b64json({ typ: "dpop+jwt", alg: "ES256", jwk });

  async function proof(method, url, accessToken, nonce) {
    const claims = {
      jti: crypto.randomUUID(),
      htm: method.toUpperCase(),
      htu: htuOf(url),
      iat: Math.floor(Date.now() / 1000),
      ath: await sha256(accessToken),
    };
    if (nonce) claims.nonce = nonce;
    const input = `${header}.${b64json(claims)}`;
    // Web Crypto's ECDSA signature is r || s, exactly what JWS ES256 wants (RFC 7518 §3.4)
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" },
      pair.privateKey, encoder.encode(input));
    return `${input}.${b64url(signature)}`;
  }

  return { jkt, proof, extractable: pair.privateKey.extractable };
}

/**
 * `fetch` with `Authorization: DPoP <token>` and a fresh proof; when the server asks for a
 * nonce (401 `use_dpop_nonce` with `DPoP-Nonce`), sign again with it once and remember it.
 */
export function dpopFetcher(key) {
  let nonce = null;
  return async function dpopFetch(url, init, accessToken) {
    const method = (init.method || "GET").toUpperCase();
    const send = async () => fetch(url, { ...init, headers: { ...init.headers,
      authorization: `DPoP ${accessToken}`, dpop: await key.proof(method, url, accessToken, nonce) } });
    let response = await send();
    const offered = response.headers.get("dpop-nonce");
    if (offered) {
      const retry = response.status === 401 && offered !== nonce
        && (response.headers.get("www-authenticate") || "").includes("use_dpop_nonce");
      nonce = offered;
      if (retry) response = await send();
    }
    return response;
  };
}
