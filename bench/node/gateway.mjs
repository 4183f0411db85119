// The Node.js peer for bench/run.py: fastify + @fastify/jwt (fast-jwt, verified-token cache on)
// + @fastify/http-proxy, doing what the gateway does on the benchmark's routes:
//
//   GET|HEAD /orders, /orders/*  -> UPSTREAM_URL, needs scope orders:read
//   POST     /orders, /orders/*  -> keys.upload_upstream, needs scope orders:write
//
// Bearer JWT (RS256, ES256, EdDSA for the bench issuer; HS256 for the dev issuer), iss/aud/exp/nbf
// checked; 401 with `WWW-Authenticate: Bearer realm="gateway"` when the token is missing, 401
// invalid_token when it fails, 403 insufficient_scope with the needed scope; every refusal has a
// JSON body {error, error_description, request_id}. Bodies stream both ways (no buffering); a
// Content-Length over 1 GiB is a 413. One JSON access line a request on stdout (pino, info).
//
//     node bench/node/gateway.mjs PORT UPSTREAM_URL KEYS.json
//
// KEYS.json is the file bench/run.py writes for bench/naive.py: public PEMs by algorithm, the
// HS256 secret, the audience, the issuer for each algorithm and the upload upstream.

import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'

import proxy from '@fastify/http-proxy'
import jwt from '@fastify/jwt'
import Fastify, { LogController } from 'fastify'

const [port, upstream, keysPath] = process.argv.slice(2)
if (!port || !upstream || !keysPath) {
  console.error('usage: node gateway.mjs PORT UPSTREAM_URL KEYS.json')
  process.exit(2)
}
const keys = JSON.parse(readFileSync(keysPath, 'utf8'))
const REALM = 'Bearer realm="gateway"'
// The gateway's default limits.max_body_size. fastify's bodyLimit does not apply to the bodies
// the proxy streams, so the Content-Length is checked below (after the token, as the gateway does).
const MAX_BODY = 1024 * 1024 * 1024

// The key is chosen from the token's (unverified) alg and iss, so a key only ever verifies tokens
// of the issuer it belongs to (the gateway binds keys to issuers the same way); fast-jwt then
// checks the signature, the alg against the key type, iss, aud, exp and nbf. Keys are returned as
// strings so that @fastify/jwt keeps one verifier (and so one token cache) per key.
function keyFor (_request, decoded, callback) {
  const alg = decoded.header.alg
  const key = alg === 'HS256' ? keys.secret : keys.public[alg]
  if (!key || keys.issuers[alg] !== decoded.payload.iss) {
    return callback(new Error('no key for this algorithm and issuer'))
  }
  return callback(null, key)
}

const app = Fastify({
  logger: { level: 'info' },
  // fastify's default is two lines a request; ours is the one in the onResponse hook
  logController: new LogController({ disableRequestLogging: true }),
  genReqId: () => randomUUID(),
  requestIdHeader: false
})

await app.register(jwt, {
  secret: keyFor,
  decode: { complete: true }, // keyFor reads the header's alg
  verify: {
    cache: true, // fast-jwt's LRU of verified tokens (1000 entries, 10 min TTL capped by exp)
    algorithms: ['RS256', 'ES256', 'EdDSA', 'HS256'],
    allowedIss: [...new Set(Object.values(keys.issuers))],
    allowedAud: keys.audience,
    requiredClaims: ['iss', 'aud', 'exp']
  }
})

app.decorateRequest('claims', null)
app.decorateRequest('authResult', 'public')

function refuse (request, reply, status, error, description, challenge) {
  reply.code(status).header('content-type', 'application/json')
  if (challenge) reply.header('www-authenticate', challenge)
  request.authResult = 'denied'
  return reply.send({ error, error_description: description, request_id: request.id })
}

// Auth before anything of the body is read (the gateway decides at the door, too).
app.addHook('onRequest', async (request, reply) => {
  const needed = request.routeOptions.config.scope
  if (!needed) return
  const authorization = request.headers.authorization
  if (!authorization || !authorization.startsWith('Bearer ')) {
    return refuse(request, reply, 401, 'unauthorized', 'A bearer token is required', REALM)
  }
  let claims
  try {
    claims = await request.jwtVerify()
  } catch {
    const description = 'The access token is not valid'
    return refuse(request, reply, 401, 'invalid_token', description,
      `${REALM}, error="invalid_token", error_description="${description}"`)
  }
  const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : []
  if (!scopes.includes(needed)) {
    const description = 'The access token does not grant the scope this route needs'
    return refuse(request, reply, 403, 'insufficient_scope', description,
      `${REALM}, error="insufficient_scope", error_description="${description}", scope="${needed}"`)
  }
  if (Number(request.headers['content-length'] ?? 0) > MAX_BODY) {
    return refuse(request, reply, 413, 'payload_too_large', 'The request body is too large')
  }
  request.authResult = 'allowed'
  request.claims = claims
})

// One access line per request (the gateway writes one too, with more fields).
app.addHook('onResponse', (request, reply, done) => {
  request.log.info({
    event: 'access',
    method: request.method,
    path: request.url,
    route: request.routeOptions.url ?? null,
    status: reply.statusCode,
    duration_ms: reply.elapsedTime,
    user: request.claims?.sub ?? null,
    auth: request.authResult
  })
  done()
})

// What the upstream receives, as the gateway sends it: no Authorization, the request id, the
// X-Forwarded-* trio and the verified identity.
function upstreamHeaders (request, headers) {
  const claims = request.claims
  const forwarded = headers['x-forwarded-for']
  const out = {
    ...headers,
    'x-request-id': request.id,
    'x-forwarded-for': forwarded ? `${forwarded}, ${request.ip}` : request.ip,
    'x-forwarded-proto': 'http',
    'x-forwarded-host': headers.host ?? ''
  }
  delete out.authorization
  delete out.expect // node answered the 100-continue already; undici refuses to forward it
  if (claims) {
    out['x-auth-subject'] = String(claims.sub ?? '')
    out['x-auth-issuer'] = String(claims.iss ?? '')
    out['x-auth-scopes'] = typeof claims.scope === 'string'
      ? claims.scope.split(' ').sort().join(' ')
      : ''
  }
  return out
}

const undici = { connections: 128, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 }
for (const [target, methods, scope] of [
  [upstream, ['GET', 'HEAD'], 'orders:read'],
  [keys.upload_upstream, ['POST'], 'orders:write']
]) {
  await app.register(proxy, {
    upstream: target,
    prefix: '/orders',
    rewritePrefix: '/orders',
    httpMethods: methods,
    config: { scope },
    undici,
    disableRequestLogging: true, // reply-from's own two info lines a request; ours is one
    replyOptions: { rewriteRequestHeaders: upstreamHeaders }
  })
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => {
    app.close().then(() => process.exit(0), () => process.exit(1))
  })
}

await app.listen({ host: '127.0.0.1', port: Number(port) })
