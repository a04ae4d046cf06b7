// A real OpenID Provider (panva/oidc-provider) for Knowflow's single sign-on tests.
//
//   node provider.js            listens on 127.0.0.1:$OIDC_PORT (default 55490)
//
// Issuer http://127.0.0.1:$OIDC_PORT. Its signing keys are generated at start (RS256), so
// a restart invalidates earlier ID tokens, which tests never keep. Everything is in memory.
//
// Clients (both confidential, code flow, PKCE S256 required):
// - `knowflow` / `knowflow-test-secret`: the one Knowflow tests sign in with.
// - `other-app` / `other-app-secret`: another relying party; its ID tokens are
//   for another audience, which Knowflow must refuse.
// They are registered as `native` so that a loopback redirect URI matches whatever port
// the test gateway listens on (RFC 8252 section 7.3); a real deployment registers its
// exact public callback URL.
//
// Accounts (the dev interactions' login form accepts any password; the login is the
// account id): `alice` (verified e-mail, groups `engineering` and `staff`), `bob` (verified,
// no groups), `mallory` (e-mail NOT verified). Any other login signs in as a verified
// person `<login>@example.org` with no groups, so tests can make fresh people; tests set
// anyone's groups with `PUT /test/accounts/{login}/groups` (a JSON list of strings).
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 55490);
const issuer = process.env.OIDC_ISSUER || `http://127.0.0.1:${port}`;

const ACCOUNTS = {
  alice: { email: 'alice@example.org', email_verified: true, name: 'Alice Example', groups: ['engineering', 'staff'] },
  bob: { email: 'bob@example.org', email_verified: true, name: 'Bob Example', groups: [] },
  mallory: { email: 'mallory@example.org', email_verified: false, name: 'Mallory', groups: [] },
};

// Groups set by tests (PUT /test/accounts/{login}/groups with a JSON list), else the defaults.
const GROUPS = new Map();

function account(login) {
  const known = ACCOUNTS[login];
  const base = known || { email: `${login}@example.org`, email_verified: true, name: login, groups: [] };
  return { ...base, preferred_username: login, groups: GROUPS.get(login) ?? base.groups };
}

function client(id, secret) {
  return {
    client_id: id,
    client_secret: secret,
    application_type: 'native',
    redirect_uris: [
      'http://127.0.0.1/api/v1/auth/oidc/test/callback',
      'http://localhost/api/v1/auth/oidc/test/callback',
      'http://127.0.0.1/auth/oidc/test/callback',
    ],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  };
}

const configuration = {
  clients: [client('knowflow', 'knowflow-test-secret'), client('other-app', 'other-app-secret')],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // Claims go into the ID token itself, not only the userinfo endpoint.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['knowflow-test-oidc-cookie-key'] },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, ...account(sub) };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);

// Test-only: change what a person's groups claim will say at their next sign-in.
provider.use(async (ctx, next) => {
  const match = ctx.method === 'PUT' && ctx.path.match(/^\/test\/accounts\/([^/]+)\/groups$/);
  if (!match) {
    await next();
    return;
  }
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const groups = JSON.parse(Buffer.concat(chunks).toString() || '[]');
  GROUPS.set(decodeURIComponent(match[1]), groups.map(String));
  ctx.status = 204;
});
provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
