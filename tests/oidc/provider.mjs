// Test-only OpenID Connect provider for authauth's integration tests.
//
// A real, certified OP (oidc-provider v9 by panva) on 127.0.0.1 with a scripted
// (form POST) login and per-client "faults" that make it misbehave in specific
// ways, so the relying party's security checks can be exercised.
// See README.md in this folder for the contract.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

// stdout carries exactly one line: "READY <issuer>". Everything else, including
// oidc-provider's console.info notices, goes to stderr. This must happen before
// oidc-provider is loaded, hence the dynamic imports below.
const stdoutWrite = (s) => new Promise((resolve) => { process.stdout.write(s, resolve); });
console.log = console.error;
console.info = console.error;
console.debug = console.error;

const { default: Provider, errors, interactionPolicy } = await import('oidc-provider');
const jose = await import('jose');

const log = (...args) => console.error('[test-op]', ...args);

export const FAULTS = [
  'iss',
  'aud',
  'nonce',
  'sig',
  'alg-none',
  'hs256',
  'unknown-kid',
  'expired',
  'no-sub',
  'no-iat',
  'userinfo-sub',
  'auth-iss',
];
const EVIL_ISSUER = 'https://evil.example';
const CLIENT_ID_RE = /^[A-Za-z0-9._~-]{1,128}$/;

// ---------------------------------------------------------------- keys

async function generateRsaJwk(kid) {
  const { privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.kid = kid ?? await jose.calculateJwkThumbprint(jwk);
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return jwk;
}

async function loadOrCreateJwks() {
  const file = process.env.OP_JWKS_FILE;
  if (!file) {
    const jwks = { keys: [await generateRsaJwk()] };
    log(`generated in-memory signing key kid=${jwks.keys[0].kid}`);
    return jwks;
  }
  if (fs.existsSync(file)) {
    const jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!Array.isArray(jwks?.keys) || !jwks.keys.some((k) => k.kty === 'RSA' && k.d)) {
      throw new Error(`${file}: expected a private JWKS ({"keys":[...]}) with an RSA private key`);
    }
    log(`loaded signing keys from ${file}: kids=${jwks.keys.map((k) => k.kid).join(',')}`);
    return jwks;
  }
  const jwks = { keys: [await generateRsaJwk()] };
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  log(`generated signing key kid=${jwks.keys[0].kid}, written to ${file}`);
  return jwks;
}

const jwks = await loadOrCreateJwks();
// Keys used only by faults: never published in the JWKS.
const rogueKey = await jose.importJWK(await generateRsaJwk('rogue'), 'RS256');
const unknownKid = `unknown-${crypto.randomUUID()}`;

const importedKeys = new Map();
async function providerSigningKey(kid) {
  const jwk = jwks.keys.find((k) => k.kid === kid && k.kty === 'RSA' && k.d)
    ?? jwks.keys.find((k) => k.kty === 'RSA' && k.d);
  if (!importedKeys.has(jwk.kid)) importedKeys.set(jwk.kid, await jose.importJWK(jwk, 'RS256'));
  return importedKeys.get(jwk.kid);
}

// ---------------------------------------------------------------- accounts

// sub -> { email, email_verified, name, picture }; the account IS what the
// last login POST for that sub submitted.
const accounts = new Map();
const registeredClientIds = new Set();

// ---------------------------------------------------------------- server / provider

let provider;
let providerCallback;
const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    log('unhandled error', err);
    if (!res.headersSent) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
    }
    res.end('internal error');
  });
});

const port = Number(process.env.OP_PORT ?? 0);
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const actualPort = server.address().port;
const issuer = process.env.OP_ISSUER || `http://127.0.0.1:${actualPort}`;

provider = new Provider(issuer, {
  jwks,
  cookies: { keys: ['authauth-test-cookie-key-1', 'authauth-test-cookie-key-0'] },
  // Static clients (JSON array of client metadata, client_secret included), so a restarted
  // provider still knows a client registered before the restart.
  clients: process.env.OP_CLIENTS ? JSON.parse(process.env.OP_CLIENTS) : [],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'picture'],
  },
  // Google-like: scope-derived claims are in the ID token too, not only userinfo.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  clientBasedCORS: () => true,
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    registration: {
      enabled: true,
      initialAccessToken: false,
      issueRegistrationAccessToken: true,
      // Let the test choose its client_id (optional); otherwise a random one.
      idFactory(ctx) {
        const wanted = ctx.oidc.body?.client_id;
        if (wanted === undefined || wanted === null || wanted === '') {
          return crypto.randomBytes(16).toString('base64url');
        }
        if (typeof wanted !== 'string' || !CLIENT_ID_RE.test(wanted)) {
          throw new errors.InvalidClientMetadata('client_id must match [A-Za-z0-9._~-]{1,128}');
        }
        if (registeredClientIds.has(wanted)) {
          throw new errors.InvalidClientMetadata(`client_id ${wanted} is already registered`);
        }
        return wanted;
      },
    },
  },
  extraClientMetadata: {
    properties: ['x_fault'],
    validator(ctx, key, value, metadata) {
      if (key !== 'x_fault') return;
      if (value === undefined || value === null || value === '') {
        metadata.x_fault = '';
        return;
      }
      if (typeof value !== 'string' || !FAULTS.includes(value)) {
        throw new errors.InvalidClientMetadata(`x_fault must be "" or one of: ${FAULTS.join(', ')}`);
      }
    },
  },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, ...account };
      },
    };
  },
  interactions: {
    policy: (() => {
      // Default login + consent prompts, plus Google's prompt=select_account
      // (accepted; it just forces the login form like prompt=login).
      const policy = interactionPolicy.base();
      policy.add(new interactionPolicy.Prompt({ name: 'select_account', requestable: true }), 0);
      return policy;
    })(),
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
});

provider.on('registration_create.success', (ctx, client) => {
  registeredClientIds.add(client.clientId);
  log(`registered client ${client.clientId} x_fault=${JSON.stringify(client.x_fault ?? '')} redirect_uris=${JSON.stringify(client.redirectUris)}`);
});
provider.on('server_error', (ctx, err) => log('server_error', err));

// ---------------------------------------------------------------- faults

const b64u = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

async function corruptIdToken(fault, idToken, client) {
  const header = jose.decodeProtectedHeader(idToken);
  const payload = jose.decodeJwt(idToken);
  const now = Math.floor(Date.now() / 1000);
  const resign = async (p) => new jose.SignJWT(p)
    .setProtectedHeader(header)
    .sign(await providerSigningKey(header.kid));

  switch (fault) {
    case 'iss':
      return resign({ ...payload, iss: EVIL_ISSUER });
    case 'aud':
      return resign({ ...payload, aud: `other-client-${crypto.randomBytes(6).toString('hex')}` });
    case 'nonce':
      return resign({ ...payload, nonce: `tampered-${crypto.randomBytes(8).toString('hex')}` });
    case 'expired':
      return resign({ ...payload, iat: now - 1200, exp: now - 600 });
    case 'no-sub': {
      const { sub, ...rest } = payload;
      return resign(rest);
    }
    case 'no-iat': {
      const { iat, ...rest } = payload;
      return resign(rest);
    }
    case 'sig':
      // Provider's header (alg + kid of a published key), rogue key's signature.
      return new jose.SignJWT(payload).setProtectedHeader(header).sign(rogueKey);
    case 'unknown-kid':
      return new jose.SignJWT(payload)
        .setProtectedHeader({ ...header, alg: 'RS256', kid: unknownKid })
        .sign(rogueKey);
    case 'alg-none': {
      const { kid, ...rest } = header;
      return `${b64u({ ...rest, alg: 'none' })}.${b64u(payload)}.`;
    }
    case 'hs256': {
      const { kid, ...rest } = header;
      return new jose.SignJWT(payload)
        .setProtectedHeader({ ...rest, alg: 'HS256' })
        .sign(new TextEncoder().encode(client.clientSecret));
    }
    default:
      return idToken;
  }
}

const ID_TOKEN_FAULTS = new Set(['iss', 'aud', 'nonce', 'sig', 'alg-none', 'hs256', 'unknown-kid', 'expired', 'no-sub', 'no-iat']);

provider.use(async (ctx, next) => {
  await next();
  const route = ctx.oidc?.route;
  const client = ctx.oidc?.client;
  const fault = client?.x_fault;
  if (!route || !fault) return;

  if (route === 'token' && ID_TOKEN_FAULTS.has(fault)
      && ctx.status === 200 && typeof ctx.body?.id_token === 'string') {
    ctx.body = { ...ctx.body, id_token: await corruptIdToken(fault, ctx.body.id_token, client) };
    log(`fault ${fault}: id_token rewritten for client ${client.clientId}`);
  } else if (route === 'userinfo' && fault === 'userinfo-sub'
      && ctx.status === 200 && ctx.body && typeof ctx.body === 'object' && ctx.body.sub) {
    ctx.body = { ...ctx.body, sub: `not-${ctx.body.sub}` };
    log(`fault userinfo-sub: userinfo sub rewritten for client ${client.clientId}`);
  } else if ((route === 'authorization' || route === 'resume') && fault === 'auth-iss'
      && ctx.status >= 300 && ctx.status < 400) {
    const location = ctx.response.get('Location');
    if (!location) return;
    let url;
    try { url = new URL(location); } catch { return; }
    const target = `${url.origin}${url.pathname}`;
    if (!client.redirectUris.includes(target) || !url.searchParams.has('iss')) return;
    url.searchParams.set('iss', EVIL_ISSUER);
    ctx.set('Location', url.href);
    log(`fault auth-iss: authorization response iss rewritten for client ${client.clientId}`);
  }
});

providerCallback = provider.callback();

// ---------------------------------------------------------------- interactions

const escapeHtml = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function send(res, status, body, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw Object.assign(new Error('body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(details) {
  const uid = escapeHtml(details.uid);
  const { client_id: clientId, scope } = details.params;
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Test OP sign-in</title></head>
<body>
<h1>Test OP sign-in</h1>
<p>Client <code>${escapeHtml(clientId)}</code> asks for <code>${escapeHtml(scope)}</code> (prompt: ${escapeHtml(details.prompt?.name)}).</p>
<form method="post" action="/interaction/${uid}/login">
  <p><label>sub <input name="sub" required></label></p>
  <p><label>email <input name="email" type="email"></label></p>
  <p><label>email_verified <select name="email_verified"><option>true</option><option>false</option></select></label></p>
  <p><label>name <input name="name"></label></p>
  <p><label>picture <input name="picture" type="url"></label></p>
  <p><button type="submit">Sign in</button></p>
</form>
<form method="post" action="/interaction/${uid}/abort"><button type="submit">Cancel</button></form>
</body></html>
`;
}

async function interactionDetailsFor(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    throw new errors.SessionNotFound('interaction cookie does not belong to this interaction uid');
  }
  return details;
}

async function handleLogin(req, res, uid) {
  const form = await readForm(req);
  const details = await interactionDetailsFor(req, res, uid);
  const sub = form.get('sub');
  if (!sub) {
    send(res, 400, 'sub is required\n');
    return;
  }
  const claims = {};
  if (form.get('email')) claims.email = form.get('email');
  if (form.has('email_verified')) {
    const v = form.get('email_verified');
    if (v !== 'true' && v !== 'false') {
      send(res, 400, 'email_verified must be "true" or "false"\n');
      return;
    }
    claims.email_verified = v === 'true';
  }
  if (form.get('name')) claims.name = form.get('name');
  if (form.get('picture')) claims.picture = form.get('picture');
  accounts.set(sub, claims);

  // Same cookie jar, different user: log the old principal out of the OP
  // session (keeping the session itself) so the login proceeds instead of
  // oidc-provider's "log out first?" confirmation page.
  if (details.session?.accountId && details.session.accountId !== sub) {
    const session = await provider.Session.findByUid(details.session.uid);
    if (session) {
      for (const k of ['accountId', 'loginTs', 'amr', 'acr', 'authorizations']) delete session[k];
      await session.persist();
    }
    delete details.session.accountId;
    await details.save(details.exp - Math.floor(Date.now() / 1000));
    log(`interaction ${uid}: switched session principal to ${sub}`);
  }

  // Automatic consent for everything requested.
  const { params } = details;
  const grant = new provider.Grant({ accountId: sub, clientId: params.client_id });
  if (params.scope) grant.addOIDCScope(params.scope);
  const grantId = await grant.save();

  log(`interaction ${uid}: login sub=${sub} client=${params.client_id}`);
  await provider.interactionFinished(req, res, {
    select_account: {},
    login: { accountId: sub, remember: true },
    consent: { grantId },
  }, { mergeWithLastSubmission: false });
}

async function handleAbort(req, res, uid) {
  await readForm(req);
  await interactionDetailsFor(req, res, uid);
  log(`interaction ${uid}: aborted`);
  await provider.interactionFinished(req, res, {
    error: 'access_denied',
    error_description: 'End-User aborted interaction',
  }, { mergeWithLastSubmission: false });
}

async function handle(req, res) {
  const { pathname } = new URL(req.url, 'http://127.0.0.1');

  if (pathname === '/__test/health' && req.method === 'GET') {
    send(res, 200, 'ok');
    return;
  }

  if (!providerCallback) {
    send(res, 503, 'starting\n');
    return;
  }

  const m = pathname.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
  if (!m) {
    providerCallback(req, res);
    return;
  }
  const [, uid, action] = m;
  try {
    if (!action && req.method === 'GET') {
      const details = await interactionDetailsFor(req, res, uid);
      send(res, 200, loginPage(details), 'text/html; charset=utf-8');
    } else if (action === 'login' && req.method === 'POST') {
      await handleLogin(req, res, uid);
    } else if (action === 'abort' && req.method === 'POST') {
      await handleAbort(req, res, uid);
    } else {
      send(res, 405, 'method not allowed\n');
    }
  } catch (err) {
    if (err instanceof errors.OIDCProviderError || err.status) {
      log(`interaction ${uid}: ${err.message} ${err.error_description ?? ''}`);
      send(res, err.statusCode ?? err.status ?? 400, `${err.error ?? 'error'}: ${err.error_description ?? err.message}\n`);
      return;
    }
    throw err;
  }
}

// ---------------------------------------------------------------- lifecycle

function shutdown(signal) {
  log(`${signal} received, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

log(`listening on http://127.0.0.1:${actualPort}, issuer ${issuer}`);
await stdoutWrite(`READY ${issuer}\n`);
