// A third-party relying party on openid-client v6 (a certified library),
// driven against Lanyard by provider/openidclient_test.go: discovery, the
// authorization code flow with PKCE, userinfo, refresh, introspection,
// revocation and RP-initiated logout. The "browser" follows Lanyard's
// redirects with a cookie jar until it lands on the relying party.
//
//   node rp.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI POST_LOGOUT_URI
//
// It prints one JSON object with what it saw; the Go test judges it. Any
// error is printed as {"error": "..."} with exit code 1.
import * as client from 'openid-client';

const [issuer, clientId, clientSecret, redirectUri, postLogoutUri] = process.argv.slice(2);
const insecure = { execute: [client.allowInsecureRequests] }; // the test server is plain http

const jar = new Map();
async function browse(url) {
  for (let i = 0; i < 20; i++) {
    if (url.startsWith(redirectUri) || url.startsWith(postLogoutUri)) return url;
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [kv] = c.split(';');
      const [k, v] = kv.split('=');
      if (v === '' || /max-age=0|max-age=-1/i.test(c)) jar.delete(k); else jar.set(k, v);
    }
    const loc = res.headers.get('location');
    if (!loc) throw new Error(`${url} answered ${res.status} without a redirect`);
    url = new URL(loc, url).href;
  }
  throw new Error('too many redirects');
}

async function main() {
  const out = {};
  const config = await client.discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret), insecure);
  const meta = config.serverMetadata();
  out.issuer = meta.issuer;

  // Authorization code flow with PKCE (S256), state and nonce.
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const authURL = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid email profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  const callback = await browse(authURL.href);
  const tokens = await client.authorizationCodeGrant(config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  const claims = tokens.claims();
  out.sub = claims.sub;
  out.id_token_claims = Object.keys(claims).sort();
  out.has_refresh_token = Boolean(tokens.refresh_token);

  // Userinfo (openid-client checks its sub against the ID token's).
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  out.userinfo_email = userinfo.email;
  out.userinfo_name = userinfo.name;

  // Refresh: a rotated refresh token and a new ID token for the same sub.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out.rotated = Boolean(refreshed.refresh_token) && refreshed.refresh_token !== tokens.refresh_token;
  out.refreshed_sub = refreshed.claims()?.sub;

  // Introspection (RFC 7662) of the new access token, then revocation
  // (RFC 7009) of the new refresh token.
  const intro = await client.tokenIntrospection(config, refreshed.access_token);
  out.introspection_active = intro.active;
  out.introspection_client_id = intro.client_id;
  await client.tokenRevocation(config, refreshed.refresh_token);
  const after = await client.tokenIntrospection(config, refreshed.refresh_token);
  out.revoked_refresh_active = after.active;
  let refreshAfterRevoke = 'succeeded';
  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token);
  } catch (e) {
    refreshAfterRevoke = e.error || e.code || String(e);
  }
  out.refresh_after_revoke = refreshAfterRevoke;

  // RP-initiated logout with the ID token as hint.
  const logoutState = client.randomState();
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: postLogoutUri,
    state: logoutState,
  });
  const back = new URL(await browse(endSession.href));
  out.logout_returned_to = back.origin + back.pathname;
  out.logout_state_echoed = back.searchParams.get('state') === logoutState;
  return out;
}

main().then(
  (out) => console.log(JSON.stringify(out)),
  (err) => {
    console.log(JSON.stringify({ error: `${err.name}: ${err.message}${err.code ? ` (${err.code})` : ''}` }));
    process.exit(1);
  },
);
