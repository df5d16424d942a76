// A real OpenID provider (npm oidc-provider, OpenID Certified) configured for the ficus SSO tests.
// See README.md in this directory for the configuration file, the login sequence and the /_test/ control API.
//
//   node provider.js --config cfg.json [--port N] [--ficus-port N] [--exit-on-stdin-close]
//
// Prints exactly one line "ready <issuer>" on stdout once it accepts connections (issuer = http://127.0.0.1:PORT;
// --port 0 or no port = an ephemeral port). Everything else (warnings, event log) goes to stderr.
import dns from 'node:dns';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';

import * as jose from 'jose';
import Provider from 'oidc-provider';

dns.setDefaultResultOrder('ipv4first'); // https://localhost:PORT (ficus) is on 127.0.0.1

// ------------------------------------------------------------------------------------------------------------
// settings: defaults < JSON file (--config / OIDC_TEST_CONFIG) < argv / env

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      i += 1;
      return argv[i];
    };
    if (a === '--config') out.config = next();
    else if (a === '--port') out.port = Number(next());
    else if (a === '--ficus-port') out.ficus_port = Number(next());
    else if (a === '--host') out.host = next();
    else if (a === '--exit-on-stdin-close') out.exit_on_stdin_close = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const configPath = args.config || process.env.OIDC_TEST_CONFIG;
const fileCfg = configPath ? JSON.parse(fs.readFileSync(configPath, 'utf8')) : {};

const DEFAULT_USERS = {
  alice: {
    name: 'Alice Example', email: 'alice@example.test', email_verified: true, groups: ['staff', 'admins'],
  },
  bob: {
    name: 'Bob Example', email: 'bob@example.test', email_verified: true, groups: ['staff'],
  },
};

const DEFAULT_TTL = {
  AccessToken: 300, IdToken: 300, RefreshToken: 3600, AuthorizationCode: 60, Session: 3600, Grant: 3600, Interaction: 600,
};

const cfg = {
  host: '127.0.0.1',
  port: 0,
  ficus_port: undefined,
  clients: undefined,
  users: DEFAULT_USERS,
  rotate_refresh_tokens: true, // true | false | "default" (oidc-provider's own policy)
  refresh_tokens: 'always', // "always" (code flow of a client allowed refresh_token) | "offline_access"
  id_token_claims: true, // claims of the granted scopes in the ID token too (not only at userinfo)
  auto_consent: true, // a grant with every requested scope is created after login (no consent page)
  auto_login: null, // a username: the login page is skipped, that user is signed in (for a browser)
  auto_logout_confirm: true, // the logout confirmation page submits itself in a browser (JavaScript)
  keys_file: undefined, // signing keys (private JWKS); created if missing, so a restart keeps them
  state_file: undefined, // the adapter's data (sessions, grants, tokens) survives a restart when set
  cookie_keys: undefined,
  exit_on_stdin_close: false,
  ...fileCfg,
  ...Object.fromEntries(Object.entries(args).filter(([k]) => k !== 'config')),
};
if (process.env.OIDC_TEST_PORT && args.port === undefined) cfg.port = Number(process.env.OIDC_TEST_PORT);
cfg.ttl = { ...DEFAULT_TTL, ...(fileCfg.ttl || {}) };

function log(...parts) {
  process.stderr.write(`oidc-test ${new Date().toISOString()} ${parts.join(' ')}\n`);
}

// ------------------------------------------------------------------------------------------------------------
// clients

function defaultClients(ficusPort) {
  const base = `https://localhost:${ficusPort}`;
  const common = {
    redirect_uris: [`${base}/_ficus/callback`],
    post_logout_redirect_uris: [`${base}/`, `${base}/_ficus/logged-out`],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    backchannel_logout_uri: `${base}/_ficus/backchannel-logout`,
    backchannel_logout_session_required: true,
    id_token_signed_response_alg: 'RS256',
  };
  return [
    {
      ...common, client_id: 'ficus-basic', client_secret: 'ficus-basic-secret-0123456789abcdef', token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      ...common, client_id: 'ficus-post', client_secret: 'ficus-post-secret-0123456789abcdef', token_endpoint_auth_method: 'client_secret_post',
    },
  ];
}

let clients = cfg.clients;
if (!clients) {
  if (!cfg.ficus_port) throw new Error('no "clients" in the configuration and no ficus_port to make the default ones');
  clients = defaultClients(cfg.ficus_port);
}

// ------------------------------------------------------------------------------------------------------------
// keys (stable across restarts when keys_file is given)

async function loadKeys() {
  if (cfg.jwks) return cfg.jwks;
  if (cfg.keys_file && fs.existsSync(cfg.keys_file)) return JSON.parse(fs.readFileSync(cfg.keys_file, 'utf8'));
  const { privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  const jwks = { keys: [jwk] };
  if (cfg.keys_file) writeFileAtomic(cfg.keys_file, JSON.stringify(jwks));
  return jwks;
}

function writeFileAtomic(file, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

// ------------------------------------------------------------------------------------------------------------
// storage: one Map for every model, optionally mirrored to state_file after every change (small test volumes)

const store = new Map(); // key "Model:id" -> { p: payload, e: expiresAt ms | null }

function loadState() {
  if (!cfg.state_file || !fs.existsSync(cfg.state_file)) return;
  const now = Date.now();
  for (const [k, v] of JSON.parse(fs.readFileSync(cfg.state_file, 'utf8'))) {
    if (v.e === null || v.e > now) store.set(k, v);
  }
}

function saveState() {
  if (cfg.state_file) writeFileAtomic(cfg.state_file, JSON.stringify([...store]));
}

function sget(key) {
  const v = store.get(key);
  if (!v) return undefined;
  if (v.e !== null && v.e <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return v.p;
}

function sset(key, payload, expiresIn) {
  store.set(key, { p: payload, e: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null });
}

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    sset(this.key(id), payload, expiresIn);
    if (this.model === 'Session') sset(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) sset(`userCode:${payload.userCode}`, id, expiresIn);
    if (payload.grantId) {
      const members = sget(`grant:${payload.grantId}`) || [];
      if (!members.includes(this.key(id))) members.push(this.key(id));
      sset(`grant:${payload.grantId}`, members, null);
    }
    saveState();
  }

  async find(id) {
    return sget(this.key(id));
  }

  async findByUid(uid) {
    const id = sget(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = sget(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const p = sget(this.key(id));
    if (p) {
      p.consumed = Math.floor(Date.now() / 1000);
      saveState();
    }
  }

  async destroy(id) {
    store.delete(this.key(id));
    saveState();
  }

  async revokeByGrantId(grantId) {
    for (const k of sget(`grant:${grantId}`) || []) store.delete(k);
    store.delete(`grant:${grantId}`);
    saveState();
  }
}

// ------------------------------------------------------------------------------------------------------------
// accounts

async function findAccount(ctx, sub) {
  const user = cfg.users[sub];
  if (!user) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { sub, preferred_username: sub, ...user };
    },
  };
}

// ------------------------------------------------------------------------------------------------------------
// pages (no external resources; small and easy to parse)

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

function htmlEscape(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

async function logoutSource(ctx, form) {
  // the provider's form holds only the xsrf input; "logout=yes" also ends the OP session (and with it every RP's)
  const withYes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/><button type="submit">Yes, sign me out</button></form>');
  const auto = cfg.auto_logout_confirm ? '<script>document.getElementById("op.logoutForm").submit()</script>' : '';
  ctx.body = page('Logout Request', `<h1>Sign out from ${htmlEscape(ctx.host)}?</h1>${withYes}${auto}`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Sign-out Success', '<h1>Sign-out Success</h1>');
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('oidc-test error', Object.entries(out).map(([k, v]) => `<pre>${htmlEscape(k)}: ${htmlEscape(v)}</pre>`).join(''));
}

// ------------------------------------------------------------------------------------------------------------
// control state (/_test/*)

const counters = {};
const backchannelLog = [];
let rules = []; // failure injection: { endpoint, mode, times, grant_type, delay_ms, status }

function count(name) {
  counters[name] = (counters[name] || 0) + 1;
}

// ------------------------------------------------------------------------------------------------------------

async function main() {
  loadState();
  const jwks = await loadKeys();
  const cookieKeys = cfg.cookie_keys || [crypto.createHash('sha256').update(JSON.stringify(jwks)).digest('base64url')];

  const server = http.createServer();
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, resolve);
  });
  const { port } = server.address();
  const issuer = `http://${cfg.host}:${port}`;

  const ttlFn = (name) => () => cfg.ttl[name];

  const provider = new Provider(issuer, {
    clients,
    findAccount,
    adapter: TestAdapter,
    jwks,
    cookies: {
      keys: cookieKeys,
      long: { httpOnly: true, sameSite: 'lax' }, // "secure" follows the connection: never over http
      short: { httpOnly: true, sameSite: 'lax' },
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'groups'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    responseTypes: ['code'],
    conformIdTokenClaims: !cfg.id_token_claims,
    pkce: { required: () => true }, // S256 is the only method oidc-provider 9 supports
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    ttl: Object.fromEntries(Object.keys(DEFAULT_TTL).map((k) => [k, ttlFn(k)])),
    async issueRefreshToken(ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      if (cfg.refresh_tokens === 'always') return true;
      return code.scopes.has('offline_access');
    },
    rotateRefreshToken(ctx) {
      if (cfg.rotate_refresh_tokens === 'default') {
        return ctx.oidc.entities.RefreshToken.ttlPercentagePassed() >= 70;
      }
      return !!cfg.rotate_refresh_tokens;
    },
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
      if (!cfg.auto_consent) return grant;
      if (!grant) grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
      if (oidc.requestParamClaims.size) grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    renderError,
    // oidc-provider refuses outgoing requests to loopback addresses (SSRF protection); the back-channel logout
    // requests go to ficus on https://localhost:PORT, verified with the CA from NODE_EXTRA_CA_CERTS.
    fetch(url, options) {
      const { dispatcher, ...rest } = options; // eslint-disable-line no-unused-vars
      return globalThis.fetch(url, rest);
    },
  });
  provider.proxy = false;

  provider.on('server_error', (ctx, err) => log('server_error', ctx?.path, err?.stack || err));
  provider.on('grant.error', (ctx, err) => log('grant.error', err.name, err.error_description || err.message));
  provider.on('authorization.error', (ctx, err) => log('authorization.error', err.name, err.error_description || err.message));
  provider.on('end_session.error', (ctx, err) => log('end_session.error', err.name, err.error_description || err.message));
  provider.on('backchannel.success', (ctx, client, sub, sid) => {
    count('backchannel.success');
    backchannelLog.push({ client_id: client.clientId, sub, sid, ok: true, at: Date.now() / 1000 });
    log('backchannel.success', client.clientId, sub, sid);
  });
  provider.on('backchannel.error', (ctx, err, client, sub, sid) => {
    count('backchannel.error');
    backchannelLog.push({ client_id: client.clientId, sub, sid, ok: false, error: String(err?.cause?.message || err?.message || err), at: Date.now() / 1000 });
    log('backchannel.error', client.clientId, sub, sid, err?.cause?.message || err?.message || err);
  });

  // path -> endpoint name (counters and failure injection)
  const endpointByPath = new Map([
    ['/.well-known/openid-configuration', 'discovery'],
    ['/jwks', 'jwks'],
    ['/auth', 'authorization'],
    ['/token', 'token'],
    ['/me', 'userinfo'],
    ['/session/end', 'end_session'],
    ['/session/end/confirm', 'end_session_confirm'],
    ['/token/revocation', 'revocation'],
    ['/token/introspection', 'introspection'],
  ]);
  const endpointOf = (p) => endpointByPath.get(p)
    || (p.startsWith('/interaction/') ? 'interaction' : p.startsWith('/auth/') ? 'authorization_resume' : 'other');

  const handle = provider.callback();

  function readBody(req, limit = 64 * 1024) {
    return new Promise((resolve, reject) => {
      const chunks = [];
      let n = 0;
      req.on('data', (c) => {
        n += c.length;
        if (n > limit) {
          reject(new Error('body too large'));
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  function sendJson(res, status, obj) {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }

  function sessions() {
    const out = [];
    for (const [k] of store) {
      if (!k.startsWith('Session:')) continue;
      const s = sget(k);
      if (!s) continue;
      out.push({
        id: k.slice('Session:'.length),
        uid: s.uid,
        sub: s.accountId,
        login_ts: s.loginTs,
        clients: Object.fromEntries(Object.entries(s.authorizations || {}).map(([cid, a]) => [cid, { sid: a.sid, grant_id: a.grantId }])),
      });
    }
    return out;
  }

  async function revokeGrant(grantId) {
    for (const k of sget(`grant:${grantId}`) || []) store.delete(k);
    store.delete(`grant:${grantId}`);
    store.delete(`Grant:${grantId}`);
  }

  async function control(req, res, p) {
    const body = req.method === 'POST' ? await readBody(req) : '';
    const data = body ? JSON.parse(body) : {};
    if (p === '/_test/counters' && req.method === 'GET') return sendJson(res, 200, counters);
    if (p === '/_test/reset' && req.method === 'POST') {
      for (const k of Object.keys(counters)) delete counters[k];
      rules = [];
      backchannelLog.length = 0;
      return sendJson(res, 200, { ok: true });
    }
    if (p === '/_test/fail' && req.method === 'GET') return sendJson(res, 200, rules);
    if (p === '/_test/fail' && req.method === 'POST') {
      if (!data.endpoint) return sendJson(res, 400, { error: 'endpoint required' });
      rules = rules.filter((r) => r.endpoint !== data.endpoint || (data.grant_type && r.grant_type !== data.grant_type));
      if (data.mode && data.mode !== 'off') {
        const modes = ['500', 'invalid_grant', 'status', 'delay', 'hang', 'close'];
        if (!modes.includes(String(data.mode))) return sendJson(res, 400, { error: `mode must be one of ${modes.join(', ')}, off` });
        rules.push({
          endpoint: data.endpoint,
          mode: String(data.mode),
          times: data.times ?? null,
          grant_type: data.grant_type ?? null,
          delay_ms: data.delay_ms ?? (data.mode === 'hang' ? 30000 : 0),
          status: data.status ?? 500,
          body: data.body ?? null,
        });
      }
      return sendJson(res, 200, rules);
    }
    if (p === '/_test/config' && req.method === 'GET') {
      return sendJson(res, 200, {
        ttl: cfg.ttl, auto_login: cfg.auto_login, auto_consent: cfg.auto_consent, rotate_refresh_tokens: cfg.rotate_refresh_tokens, refresh_tokens: cfg.refresh_tokens,
      });
    }
    if (p === '/_test/config' && req.method === 'POST') {
      if (data.ttl) Object.assign(cfg.ttl, data.ttl);
      for (const k of ['auto_login', 'auto_consent', 'rotate_refresh_tokens', 'refresh_tokens', 'auto_logout_confirm']) {
        if (k in data) cfg[k] = data[k];
      }
      return sendJson(res, 200, { ok: true, ttl: cfg.ttl });
    }
    if (p === '/_test/sessions' && req.method === 'GET') return sendJson(res, 200, sessions());
    if (p === '/_test/backchannel' && req.method === 'GET') return sendJson(res, 200, backchannelLog);
    if (p === '/_test/backchannel-logout' && req.method === 'POST') {
      // { sub?, sid?, client_id?, end_session: true } -> one logout_token per matching (session, client)
      const results = [];
      for (const s of sessions()) {
        if (data.sub && s.sub !== data.sub) continue;
        for (const [cid, a] of Object.entries(s.clients)) {
          if (data.sid && a.sid !== data.sid) continue;
          if (data.client_id && cid !== data.client_id) continue;
          const client = await provider.Client.find(cid);
          if (!client?.backchannelLogoutUri) continue;
          try {
            await client.backchannelLogout(s.sub, a.sid);
            results.push({ client_id: cid, sub: s.sub, sid: a.sid, ok: true });
            provider.emit('backchannel.success', undefined, client, s.sub, a.sid);
          } catch (err) {
            results.push({ client_id: cid, sub: s.sub, sid: a.sid, ok: false, error: String(err?.cause?.message || err.message) });
            provider.emit('backchannel.error', undefined, err, client, s.sub, a.sid);
          }
          if (data.end_session !== false && a.grant_id) await revokeGrant(a.grant_id);
        }
        if (data.end_session !== false && !data.client_id && !data.sid) {
          store.delete(`Session:${s.id}`);
          store.delete(`sessionUid:${s.uid}`);
        }
      }
      saveState();
      return sendJson(res, 200, results);
    }
    if (p === '/_test/revoke' && req.method === 'POST') {
      // { sub, client_id? }: every grant of that user (and its tokens) is gone: refresh -> invalid_grant
      const revoked = [];
      for (const [k] of store) {
        if (!k.startsWith('Grant:')) continue;
        const g = sget(k);
        if (!g || (data.sub && g.accountId !== data.sub) || (data.client_id && g.clientId !== data.client_id)) continue;
        const id = k.slice('Grant:'.length);
        await revokeGrant(id);
        revoked.push(id);
      }
      saveState();
      return sendJson(res, 200, { revoked });
    }
    return sendJson(res, 404, { error: 'unknown control endpoint' });
  }

  function ruleFor(endpoint, grantType) {
    const i = rules.findIndex((r) => r.endpoint === endpoint && (!r.grant_type || r.grant_type === grantType));
    if (i < 0) return null;
    const r = rules[i];
    if (r.times !== null) {
      r.times -= 1;
      if (r.times <= 0) rules.splice(i, 1);
    }
    return r;
  }

  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  async function autoLogin(req, res, p) {
    // GET /interaction/:uid with auto_login set: finish the login prompt without a page (consent is automatic)
    try {
      const details = await provider.interactionDetails(req, res);
      if (details.prompt.name !== 'login' || !p.endsWith(details.uid)) return false;
      await provider.interactionFinished(req, res, { login: { accountId: cfg.auto_login } }, { mergeWithLastSubmission: false });
      return true;
    } catch (err) {
      log('auto_login failed', err.message);
      return false;
    }
  }

  server.on('request', async (req, res) => {
    try {
      const p = new URL(req.url, issuer).pathname;
      if (p.startsWith('/_test/')) {
        await control(req, res, p);
        return;
      }
      const endpoint = endpointOf(p);
      count(endpoint);
      let grantType;
      if (endpoint === 'token' && req.method === 'POST') {
        // read the form here (to count grant types on arrival); oidc-provider then uses req.body
        req.body = await readBody(req);
        grantType = new URLSearchParams(req.body).get('grant_type') || 'none';
        count(`token:${grantType}`);
      }
      const rule = ruleFor(endpoint, grantType);
      if (rule) {
        count(`injected:${endpoint}:${rule.mode}`);
        log('injected', rule.mode, 'at', endpoint, grantType || '');
        if (rule.mode === 'close') {
          req.socket.destroy();
          return;
        }
        if (rule.mode === 'hang') {
          await sleep(rule.delay_ms);
          req.socket.destroy();
          return;
        }
        if (rule.mode === 'delay') {
          await sleep(rule.delay_ms);
        } else if (rule.mode === 'invalid_grant') {
          sendJson(res, 400, { error: 'invalid_grant', error_description: 'injected by the test control endpoint' });
          return;
        } else if (rule.mode === '500' || rule.mode === 'status') {
          const status = rule.mode === '500' ? 500 : rule.status;
          const b = rule.body ?? 'injected failure';
          res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(b) });
          res.end(b);
          return;
        }
      }
      if (cfg.auto_login && endpoint === 'interaction' && req.method === 'GET' && await autoLogin(req, res, p)) return;
      if (endpoint === 'interaction' && req.method === 'POST') {
        // the development login form accepts any name: only configured users may sign in, anyone else gets the
        // login page again (303 back to it)
        req.body = await readBody(req);
        const form = new URLSearchParams(req.body);
        if (form.get('prompt') === 'login' && !Object.hasOwn(cfg.users, form.get('login') || '')) {
          count('login.refused');
          log('login refused for', JSON.stringify(form.get('login')));
          res.writeHead(303, { location: p, 'content-length': 0 });
          res.end();
          return;
        }
      }
      handle(req, res);
    } catch (err) {
      log('handler error', err.stack || err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err.message) });
      else res.destroy();
    }
  });

  const stop = () => {
    server.close();
    for (const s of sockets) s.destroy();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (cfg.exit_on_stdin_close) {
    process.stdin.on('end', stop);
    process.stdin.on('close', stop);
    process.stdin.resume();
  }

  log('listening', issuer, 'clients', clients.map((c) => c.client_id).join(','), 'node', process.version,
    'oidc-provider', JSON.parse(fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules/oidc-provider/package.json'), 'utf8')).version);
  process.stdout.write(`ready ${issuer}\n`);
}

main().catch((err) => {
  log('fatal', err.stack || err);
  process.exit(1);
});
