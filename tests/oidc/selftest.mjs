// Self-check of provider.mjs (`npm test`): starts the provider as a child
// process, drives complete browser-like flows with a tiny cookie jar and
// redirects off, and checks every fault. Prints "N passed, N failed".

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as jose from 'jose';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const EVIL = 'https://evil.example';
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err.stack ?? err}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function eq(actual, expected, msg) {
  if (actual !== expected) {
    throw new Error(`${msg}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

// ------------------------------------------------------------ child process

function startProvider(env = {}) {
  const child = spawn(process.execPath, [path.join(HERE, 'provider.mjs')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no READY line; stderr:\n${stderr}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        const line = out.slice(0, nl);
        const m = line.match(/^READY (\S+)$/);
        if (!m) reject(new Error(`unexpected stdout line: ${line}`));
        else resolve({ child, issuer: m[1], line, stdout: () => out, stderr: () => stderr });
      }
    });
    child.on('exit', (code) => reject(new Error(`provider exited early (${code}):\n${stderr}`)));
  });
}

function stopProvider(op) {
  return new Promise((resolve) => {
    op.child.removeAllListeners('exit');
    op.child.on('exit', (code, signal) => resolve({ code, signal }));
    op.child.kill('SIGTERM');
  });
}

// ------------------------------------------------------------ browser-ish client

class Jar {
  constructor() { this.cookies = new Map(); }

  store(res) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';').map((s) => s.trim());
      const eqAt = pair.indexOf('=');
      const name = pair.slice(0, eqAt);
      const value = pair.slice(eqAt + 1);
      let cpath = '/';
      let expired = value === '';
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') cpath = v;
        if (k.toLowerCase() === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (k.toLowerCase() === 'max-age' && Number(v) <= 0) expired = true;
      }
      const key = `${name}|${cpath}`;
      if (expired) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path: cpath });
    }
  }

  header(url) {
    const p = new URL(url).pathname;
    return [...this.cookies.values()]
      .filter((c) => p === c.path || p.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  names(url) {
    return this.header(url).split('; ').filter(Boolean).map((s) => s.split('=')[0]);
  }
}

async function browse(jar, url, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  const cookie = jar.header(url);
  if (cookie) headers.cookie = cookie;
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  jar.store(res);
  return res;
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

async function register(issuer, meta) {
  const res = await fetch(`${issuer}/reg`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      redirect_uris: [REDIRECT_URI],
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      ...meta,
    }),
  });
  const body = await res.json();
  return { status: res.status, body };
}

function authUrl(issuer, clientId, over = {}) {
  const verifier = b64url(crypto.randomBytes(32));
  const params = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile',
    state: b64url(crypto.randomBytes(12)),
    nonce: b64url(crypto.randomBytes(12)),
    code_challenge: b64url(crypto.createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
    ...over,
  };
  for (const [k, v] of Object.entries(params)) if (v === undefined) delete params[k];
  return { url: `${issuer}/auth?${new URLSearchParams(params)}`, verifier, params };
}

const USER = {
  sub: 'user-123',
  email: 'alice@example.com',
  email_verified: 'true',
  name: 'Alice Example',
  picture: 'https://example.com/alice.png',
};

// Runs authorization -> interaction -> login -> resume -> redirect_uri.
// Returns the final redirect URL plus the trace of visited steps.
async function login(issuer, client, { jar = new Jar(), user = USER, abort = false, over = {} } = {}) {
  const trace = [];
  const a = authUrl(issuer, client.client_id, over);
  let res = await browse(jar, a.url);
  trace.push(`${res.status} GET /auth -> ${res.headers.get('location')}`);
  let loc = new URL(res.headers.get('location'), issuer);
  if (loc.pathname.startsWith('/interaction/')) {
    const page = await browse(jar, loc.href);
    trace.push(`${page.status} GET ${loc.pathname} [cookies: ${jar.names(loc.href).join(',')}]`);
    eq(page.status, 200, 'interaction page status');
    const html = await page.text();
    assert(html.includes(`action="${loc.pathname}/login"`), 'login form present');
    const postUrl = `${loc.href}/${abort ? 'abort' : 'login'}`;
    res = await browse(jar, postUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(abort ? {} : user).toString(),
    });
    trace.push(`${res.status} POST ${new URL(postUrl).pathname} -> ${res.headers.get('location')}`);
    eq(res.status, 303, 'login POST status');
    loc = new URL(res.headers.get('location'), issuer);
    res = await browse(jar, loc.href);
    trace.push(`${res.status} GET ${loc.pathname} [cookies: ${jar.names(loc.href).join(',')}] -> ${res.headers.get('location')}`);
    eq(res.status, 303, 'resume status');
    loc = new URL(res.headers.get('location'), issuer);
  }
  return { final: loc, trace, jar, ...a };
}

async function token(issuer, client, code, verifier, { post = false } = {}) {
  const form = {
    grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier,
  };
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (post) {
    Object.assign(form, { client_id: client.client_id, client_secret: client.client_secret });
  } else {
    const enc = (s) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(client.client_id)}:${enc(client.client_secret)}`).toString('base64')}`;
  }
  const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body: new URLSearchParams(form) });
  return { status: res.status, body: await res.json() };
}

async function fullFlow(issuer, client, opts = {}) {
  const flow = await login(issuer, client, opts);
  const code = flow.final.searchParams.get('code');
  assert(code, `no code in ${flow.final}`);
  const tok = await token(issuer, client, code, flow.verifier, opts);
  eq(tok.status, 200, `token status (${JSON.stringify(tok.body)})`);
  return { ...flow, tok };
}

// ------------------------------------------------------------ tests

const op = await startProvider();
const { issuer } = op;
const JWKS = jose.createLocalJWKSet(await (await fetch(`${issuer}/jwks`)).json());
const publishedKids = (await (await fetch(`${issuer}/jwks`)).json()).keys.map((k) => k.kid);

await check('READY line and discovery issuer', async () => {
  assert(/^READY http:\/\/127\.0\.0\.1:\d+$/.test(op.line), op.line);
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  eq(disc.issuer, issuer, 'issuer');
  eq(disc.registration_endpoint, `${issuer}/reg`, 'registration_endpoint');
  assert(disc.authorization_response_iss_parameter_supported, 'iss param supported');
  assert(publishedKids.length === 1, 'one key in JWKS');
});

const good = (await register(issuer, { client_id: 'good-client', x_fault: '' })).body;
console.log(`registration response: ${JSON.stringify(good)}`);

await check('registration returns chosen client_id and a secret', async () => {
  eq(good.client_id, 'good-client', 'client_id');
  assert(typeof good.client_secret === 'string' && good.client_secret.length > 20, 'client_secret');
  eq(good.x_fault, '', 'x_fault echoed');
  eq(good.token_endpoint_auth_method, 'client_secret_basic', 'auth method');
});

await check('registration: duplicate client_id / bad x_fault refused, random id works', async () => {
  const dup = await register(issuer, { client_id: 'good-client' });
  eq(dup.status, 400, 'dup status');
  eq(dup.body.error, 'invalid_client_metadata', 'dup error');
  const bad = await register(issuer, { x_fault: 'bogus' });
  eq(bad.status, 400, 'bad fault status');
  eq(bad.body.error, 'invalid_client_metadata', 'bad fault error');
  const rnd = await register(issuer, {});
  eq(rnd.status, 201, 'random status');
  assert(rnd.body.client_id && rnd.body.client_secret, 'random id+secret');
});

let goodFlow;
await check('happy path: code flow, claims, signature, userinfo', async () => {
  goodFlow = await fullFlow(issuer, good);
  console.log(`  flow:\n    ${goodFlow.trace.join('\n    ')}`);
  const { final, params, tok } = goodFlow;
  eq(`${final.origin}${final.pathname}`, REDIRECT_URI, 'redirected to redirect_uri');
  eq(final.searchParams.get('state'), params.state, 'state');
  eq(final.searchParams.get('iss'), issuer, 'auth response iss');
  const { payload, protectedHeader } = await jose.jwtVerify(tok.body.id_token, JWKS, {
    issuer, audience: good.client_id, algorithms: ['RS256'],
  });
  console.log(`  id_token header: ${JSON.stringify(protectedHeader)}\n  id_token payload: ${JSON.stringify(payload)}`);
  eq(payload.nonce, params.nonce, 'nonce');
  eq(payload.sub, USER.sub, 'sub');
  eq(payload.email, USER.email, 'email');
  eq(payload.email_verified, true, 'email_verified');
  eq(payload.name, USER.name, 'name');
  eq(payload.picture, USER.picture, 'picture');
  assert(typeof payload.iat === 'number' && typeof payload.exp === 'number' && payload.exp > payload.iat, 'iat/exp');
  const ui = await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${tok.body.access_token}` } });
  eq(ui.status, 200, 'userinfo status');
  const claims = await ui.json();
  eq(claims.sub, USER.sub, 'userinfo sub');
  eq(claims.email, USER.email, 'userinfo email');
  eq(claims.email_verified, true, 'userinfo email_verified');
  eq(claims.name, USER.name, 'userinfo name');
  eq(claims.picture, USER.picture, 'userinfo picture');
});

await check('code is single-use; wrong code_verifier refused', async () => {
  const again = await token(issuer, good, goodFlow.final.searchParams.get('code'), goodFlow.verifier);
  eq(again.body.error, 'invalid_grant', 'reuse');
  const flow = await login(issuer, good);
  const bad = await token(issuer, good, flow.final.searchParams.get('code'), b64url(crypto.randomBytes(32)));
  eq(bad.body.error, 'invalid_grant', 'bad verifier');
});

await check('client_secret_post client and email_verified=false', async () => {
  const c = (await register(issuer, { token_endpoint_auth_method: 'client_secret_post' })).body;
  const flow = await fullFlow(issuer, c, { post: true, user: { sub: 'bob', email: 'bob@example.com', email_verified: 'false' } });
  const { payload } = await jose.jwtVerify(flow.tok.body.id_token, JWKS, { issuer, audience: c.client_id });
  eq(payload.sub, 'bob', 'sub');
  eq(payload.email_verified, false, 'email_verified');
  assert(!('name' in payload) && !('picture' in payload), 'no name/picture when not submitted');
});

await check('authorization without PKCE refused (invalid_request)', async () => {
  const a = authUrl(issuer, good.client_id, { code_challenge: undefined, code_challenge_method: undefined });
  const res = await browse(new Jar(), a.url);
  eq(res.status, 303, 'status');
  const loc = new URL(res.headers.get('location'));
  eq(`${loc.origin}${loc.pathname}`, REDIRECT_URI, 'error goes to redirect_uri');
  eq(loc.searchParams.get('error'), 'invalid_request', 'error');
  console.log(`  -> ${loc.href}`);
});

await check('plain PKCE method refused', async () => {
  const a = authUrl(issuer, good.client_id, { code_challenge_method: 'plain', code_challenge: 'x'.repeat(43) });
  const res = await browse(new Jar(), a.url);
  const loc = new URL(res.headers.get('location'));
  eq(loc.searchParams.get('error'), 'invalid_request', 'error');
});

await check('redirect_uri with trailing slash refused (no redirect)', async () => {
  const a = authUrl(issuer, good.client_id, { redirect_uri: `${REDIRECT_URI}/` });
  const res = await browse(new Jar(), a.url);
  eq(res.status, 400, 'status');
  assert(!res.headers.get('location'), 'no Location');
  const body = await res.text();
  assert(body.includes('invalid_redirect_uri'), `body mentions invalid_redirect_uri: ${body.slice(0, 200)}`);
});

await check('abort -> error=access_denied&state', async () => {
  const flow = await login(issuer, good, { abort: true });
  eq(flow.final.searchParams.get('error'), 'access_denied', 'error');
  eq(flow.final.searchParams.get('state'), flow.params.state, 'state');
  eq(flow.final.searchParams.get('iss'), issuer, 'iss');
});

await check('same jar: second authorization skips the form; fresh jar shows it', async () => {
  const jar = new Jar();
  await fullFlow(issuer, good, { jar });
  const second = await login(issuer, good, { jar });
  eq(second.trace.length, 1, `no interaction in same jar (${second.trace})`);
  assert(second.final.searchParams.get('code'), 'code issued silently');
  const again = await login(issuer, good, { jar, over: { prompt: 'login' } });
  assert(again.trace.length > 1, 'prompt=login shows the form again');
  const fresh = await login(issuer, good, { jar: new Jar() });
  assert(fresh.trace.some((t) => t.includes('/interaction/')), 'fresh jar shows the form');
});

await check('prompt=select_account shows the form even with a session', async () => {
  const jar = new Jar();
  await fullFlow(issuer, good, { jar });
  const again = await fullFlow(issuer, good, { jar, over: { prompt: 'select_account' } });
  assert(again.trace.length > 1, 'form shown');
  const none = await login(issuer, good, { jar: new Jar(), over: { prompt: 'none' } });
  eq(none.final.searchParams.get('error'), 'login_required', 'prompt=none without session');
});

await check('same jar, another client and another sub: switches user', async () => {
  const jar = new Jar();
  await fullFlow(issuer, good, { jar });
  const other = (await register(issuer, {})).body;
  const flow = await fullFlow(issuer, other, { jar, user: { sub: 'carol', email: 'carol@example.com', email_verified: 'true' } });
  assert(flow.trace.length > 1, 'form shown for new client');
  const { payload } = await jose.jwtVerify(flow.tok.body.id_token, JWKS, { issuer, audience: other.client_id });
  eq(payload.sub, 'carol', 'sub switched');
});

await check('interaction POST without sub -> 400', async () => {
  const jar = new Jar();
  const a = authUrl(issuer, good.client_id);
  const res = await browse(jar, a.url);
  const loc = new URL(res.headers.get('location'), issuer);
  const r = await browse(jar, `${loc.href}/login`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=x%40y',
  });
  eq(r.status, 400, 'status');
});

// ----- faults

async function faultFlow(fault) {
  const reg = await register(issuer, { x_fault: fault });
  eq(reg.status, 201, `register ${fault}`);
  eq(reg.body.x_fault, fault, 'x_fault echoed');
  return { client: reg.body, ...(await fullFlow(issuer, reg.body)) };
}
const parts = (jwt) => ({
  header: jose.decodeProtectedHeader(jwt),
  payload: jose.decodeJwt(jwt),
});
async function sigOk(jwt) {
  await jose.compactVerify(jwt, JWKS, { algorithms: ['RS256'] });
}
async function sigFails(jwt) {
  try {
    await jose.compactVerify(jwt, JWKS, { algorithms: ['RS256'] });
  } catch (err) {
    return err.code;
  }
  throw new Error('signature unexpectedly verified');
}
const report = (fault, f, extra = '') => console.log(`  ${fault}: header=${JSON.stringify(f.header)} ${extra}`);

await check('fault iss', async () => {
  const r = await faultFlow('iss');
  const f = parts(r.tok.body.id_token);
  eq(f.payload.iss, EVIL, 'iss');
  await sigOk(r.tok.body.id_token);
  eq(f.payload.nonce, r.params.nonce, 'nonce intact');
  report('iss', f, `iss=${f.payload.iss} (signature valid)`);
});

await check('fault aud', async () => {
  const r = await faultFlow('aud');
  const f = parts(r.tok.body.id_token);
  assert(f.payload.aud !== r.client.client_id && !String(f.payload.aud).includes(r.client.client_id), 'aud differs');
  await sigOk(r.tok.body.id_token);
  report('aud', f, `aud=${f.payload.aud} (signature valid)`);
});

await check('fault nonce', async () => {
  const r = await faultFlow('nonce');
  const f = parts(r.tok.body.id_token);
  assert(f.payload.nonce && f.payload.nonce !== r.params.nonce, 'nonce differs');
  await sigOk(r.tok.body.id_token);
  report('nonce', f, `nonce=${f.payload.nonce} requested=${r.params.nonce} (signature valid)`);
});

await check('fault sig', async () => {
  const r = await faultFlow('sig');
  const f = parts(r.tok.body.id_token);
  assert(publishedKids.includes(f.header.kid), 'kid is the provider kid');
  eq(f.header.alg, 'RS256', 'alg');
  const code = await sigFails(r.tok.body.id_token);
  eq(f.payload.iss, issuer, 'claims otherwise valid');
  report('sig', f, `verify -> ${code}`);
});

await check('fault alg-none', async () => {
  const r = await faultFlow('alg-none');
  const f = parts(r.tok.body.id_token);
  eq(f.header.alg, 'none', 'alg');
  assert(r.tok.body.id_token.endsWith('.') && r.tok.body.id_token.split('.').length === 3, 'empty signature part');
  const code = await sigFails(r.tok.body.id_token);
  report('alg-none', f, `verify -> ${code}`);
});

await check('fault hs256', async () => {
  const r = await faultFlow('hs256');
  const f = parts(r.tok.body.id_token);
  eq(f.header.alg, 'HS256', 'alg');
  await jose.compactVerify(r.tok.body.id_token, new TextEncoder().encode(r.client.client_secret));
  const code = await sigFails(r.tok.body.id_token);
  report('hs256', f, `HMAC with client_secret verifies; JWKS verify -> ${code}`);
});

await check('fault unknown-kid', async () => {
  const r = await faultFlow('unknown-kid');
  const f = parts(r.tok.body.id_token);
  assert(!publishedKids.includes(f.header.kid), 'kid not published');
  const code = await sigFails(r.tok.body.id_token);
  report('unknown-kid', f, `verify -> ${code}`);
});

await check('fault expired', async () => {
  const r = await faultFlow('expired');
  const f = parts(r.tok.body.id_token);
  const now = Math.floor(Date.now() / 1000);
  assert(f.payload.exp < now - 500 && f.payload.iat < now - 1100, 'exp/iat in the past');
  await sigOk(r.tok.body.id_token);
  let code;
  try { await jose.jwtVerify(r.tok.body.id_token, JWKS, { issuer, audience: r.client.client_id }); } catch (e) { code = e.code; }
  eq(code, 'ERR_JWT_EXPIRED', 'jwtVerify');
  report('expired', f, `iat=${now - f.payload.iat}s ago exp=${now - f.payload.exp}s ago (signature valid)`);
});

await check('fault no-sub', async () => {
  const r = await faultFlow('no-sub');
  const f = parts(r.tok.body.id_token);
  assert(!('sub' in f.payload), 'sub removed');
  await sigOk(r.tok.body.id_token);
  report('no-sub', f, `claims=${Object.keys(f.payload)} (signature valid)`);
});

await check('fault no-iat', async () => {
  const r = await faultFlow('no-iat');
  const f = parts(r.tok.body.id_token);
  assert(!('iat' in f.payload), 'iat removed');
  await sigOk(r.tok.body.id_token);
  report('no-iat', f, `claims=${Object.keys(f.payload)} (signature valid)`);
});

await check('fault userinfo-sub', async () => {
  const r = await faultFlow('userinfo-sub');
  const { payload } = await jose.jwtVerify(r.tok.body.id_token, JWKS, { issuer, audience: r.client.client_id });
  eq(payload.sub, USER.sub, 'id_token sub intact');
  const ui = await (await fetch(`${issuer}/me`, { headers: { authorization: `Bearer ${r.tok.body.access_token}` } })).json();
  assert(ui.sub && ui.sub !== payload.sub, 'userinfo sub differs');
  eq(ui.email, USER.email, 'other claims intact');
  console.log(`  userinfo-sub: id_token sub=${payload.sub} userinfo sub=${ui.sub}`);
});

await check('fault auth-iss (success and error responses)', async () => {
  const r = await faultFlow('auth-iss');
  eq(r.final.searchParams.get('iss'), EVIL, 'iss in redirect');
  eq(r.final.searchParams.get('state'), r.params.state, 'state intact');
  const { payload } = await jose.jwtVerify(r.tok.body.id_token, JWKS, { issuer, audience: r.client.client_id });
  eq(payload.nonce, r.params.nonce, 'id_token intact');
  const ab = await login(issuer, r.client, { abort: true });
  eq(ab.final.searchParams.get('iss'), EVIL, 'iss in error redirect');
  console.log(`  auth-iss: ${r.final.href.replace(/code=[^&]+/, 'code=…')}`);
});

await check('SIGTERM exits 0', async () => {
  const { code } = await stopProvider(op);
  eq(code, 0, 'exit code');
  eq(op.stdout(), op.line + '\n', 'stdout is exactly the READY line');
});

await check('OP_JWKS_FILE: created, reused on restart; OP_PORT/OP_ISSUER honoured', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'test-op-'));
  const file = path.join(dir, 'jwks.json');
  try {
    const a = await startProvider({ OP_JWKS_FILE: file });
    const kidA = (await (await fetch(`${a.issuer}/jwks`)).json()).keys[0].kid;
    await stopProvider(a);
    assert(fs.existsSync(file), 'file written');
    eq(JSON.parse(fs.readFileSync(file, 'utf8')).keys[0].kid, kidA, 'file kid');
    const b = await startProvider({ OP_JWKS_FILE: file });
    const kidB = (await (await fetch(`${b.issuer}/jwks`)).json()).keys[0].kid;
    await stopProvider(b);
    eq(kidB, kidA, 'same kid after restart');
    const c = await startProvider({});
    const kidC = (await (await fetch(`${c.issuer}/jwks`)).json()).keys[0].kid;
    await stopProvider(c);
    assert(kidC !== kidA, 'fresh key without OP_JWKS_FILE');
    // A fixed port (picked by the OS first) and a custom issuer string.
    const probe = await startProvider({});
    const fixedPort = new URL(probe.issuer).port;
    await stopProvider(probe);
    const d = await startProvider({ OP_PORT: fixedPort, OP_ISSUER: 'http://localhost:1234/custom' });
    eq(d.line, 'READY http://localhost:1234/custom', 'READY shows OP_ISSUER');
    const disc = await (await fetch(`http://127.0.0.1:${fixedPort}/.well-known/openid-configuration`)).json();
    await stopProvider(d);
    eq(disc.issuer, 'http://localhost:1234/custom', 'discovery issuer');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

if (op.child.exitCode === null) await stopProvider(op);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
