// A real OpenID provider for the sign-in tests: panva's oidc-provider with
// its development login screens (any password), test accounts, and one
// confidential client per test gateway. Run from a directory whose
// node_modules holds oidc-provider (the tests copy it there).
//
//   PORT=… REDIRECT_URIS=uri,uri KID=k1 KEY_FILE=path node provider.mjs
//
// KID and KEY_FILE name the signing key; a restart with another KID and
// file is a key rotation. For the refusal tests, POST /test/mode?m=aud|
// expired|plain makes the token endpoint hand out id_tokens re-signed with
// the same published key but for another audience, or expired.
import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';
import { SignJWT, decodeJwt } from 'jose';

const PORT = Number(process.env.PORT);
const ISSUER = `http://127.0.0.1:${PORT}`;
const KID = process.env.KID || 'k1';
const KEY_FILE = process.env.KEY_FILE;
let jwk;
if (KEY_FILE && existsSync(KEY_FILE)) {
  jwk = JSON.parse(readFileSync(KEY_FILE, 'utf8'));
} else {
  jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  if (KEY_FILE) writeFileSync(KEY_FILE, JSON.stringify(jwk));
}
const privateKey = createPrivateKey({ key: jwk, format: 'jwk' });

const ACCOUNTS = {
  alice: { email: 'alice@example.test', email_verified: true, name: 'Alice Admin', groups: ['eng', 'gw-admins'] },
  dave: { email: 'dave@example.test', email_verified: true, name: 'Dave Dev', groups: ['eng'] },
  erin: { email: 'erin@example.test', email_verified: true, name: 'Erin', groups: [] },
  bob: { email: 'bob@elsewhere.test', email_verified: true, name: 'Bob Outside', groups: [] },
  carol: { email: 'carol@example.test', email_verified: false, name: 'Carol Unverified', groups: [] },
};

const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);
const provider = new Provider(ISSUER, {
  jwks: { keys: [{ ...jwk, kid: KID, use: 'sig', alg: 'RS256' }] },
  clients: [
    { client_id: 'gw-web', client_secret: 'gw-secret', redirect_uris: redirectUris, response_types: ['code'],
      grant_types: ['authorization_code', 'refresh_token'] },
  ],
  async findAccount(ctx, id) {
    const a = ACCOUNTS[id];
    return a && { accountId: id, claims: async () => ({ sub: id, ...a }) };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});

let mode = 'plain';
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/mode' && ctx.method === 'POST') {
    mode = ctx.query.m || 'plain';
    ctx.body = { mode };
    return;
  }
  await next();
  if (ctx.path === '/token' && mode !== 'plain' && ctx.body && ctx.body.id_token) {
    const claims = decodeJwt(ctx.body.id_token);
    const now = Math.floor(Date.now() / 1000);
    if (mode === 'aud') claims.aud = 'some-other-app';
    if (mode === 'expired') { claims.iat = now - 7200; claims.exp = now - 3600; }
    ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: KID }).sign(privateKey) };
  }
});

provider.listen(PORT, '127.0.0.1', () => console.log(`oidc-provider listening on ${ISSUER}`));
