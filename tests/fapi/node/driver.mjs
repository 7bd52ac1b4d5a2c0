// A relying party built on openid-client (v6) driving one full flow against an OpenID
// Provider: discovery, a pushed authorization request (RFC 9126) with PKCE (RFC 7636),
// the authorization endpoint (fetched without a browser: the test's host approves a fixed
// end-user and redirects), the code exchange (ID token validated by the library), then
// UserInfo. With DPoP (RFC 9449) the library proves possession of one key at the pushed
// request, token and UserInfo endpoints and retries once on `use_dpop_nonce`.
//
// Input: one JSON object in the environment variable PYOP_DRIVER_INPUT:
//   issuer, client_id, redirect_uri, scope,
//   auth: {method: "private_key_jwt", jwk: <private JWK with kid>}
//       | {method: "client_secret_basic", secret: "..."},
//   dpop: null | {alg: "ES256" | "PS256" | "EdDSA" | "Ed25519"}
// (the library signs with an Ed25519 key, client assertions and DPoP proofs alike, as the
// fully-specified JWS alg "Ed25519" of RFC 9864)
// Output (stdout): one JSON object {par_request_uri, token, id_token_claims, userinfo,
// dpop_jkt?}, or {error, ...} with exit status 1.

import * as client from 'openid-client'

const input = JSON.parse(process.env.PYOP_DRIVER_INPUT)

const CURVES = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }

async function importPrivateKey (jwk) {
  const alg = jwk.alg
  let algorithm
  if (alg in CURVES) {
    algorithm = { name: 'ECDSA', namedCurve: CURVES[alg] }
  } else if (alg === 'PS256' || alg === 'RS256') {
    algorithm = { name: alg === 'PS256' ? 'RSA-PSS' : 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  } else if (alg === 'EdDSA' || alg === 'Ed25519') {
    algorithm = { name: 'Ed25519' }
  } else {
    throw new Error(`unsupported client key alg ${alg}`)
  }
  const { kid, alg: _alg, use: _use, ...material } = jwk
  return { key: await crypto.subtle.importKey('jwk', material, algorithm, false, ['sign']), kid }
}

async function clientAuthentication (auth) {
  if (auth.method === 'private_key_jwt') {
    return client.PrivateKeyJwt(await importPrivateKey(auth.jwk))
  }
  if (auth.method === 'client_secret_basic') {
    return client.ClientSecretBasic(auth.secret)
  }
  throw new Error(`unsupported auth method ${auth.method}`)
}

async function thumbprint (publicKey) {
  // RFC 7638: the required members in lexicographic order, SHA-256, base64url
  const jwk = await crypto.subtle.exportKey('jwk', publicKey)
  const members = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'], OKP: ['crv', 'kty', 'x'] }[jwk.kty]
  const canonical = JSON.stringify(Object.fromEntries(members.map((name) => [name, jwk[name]])))
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical))
  return Buffer.from(digest).toString('base64url')
}

async function main () {
  const issuer = new URL(input.issuer)
  const config = await client.discovery(
    issuer, input.client_id, { redirect_uris: [input.redirect_uri] },
    await clientAuthentication(input.auth),
    // the test's host serves plain HTTP on a loopback port
    { execute: [client.allowInsecureRequests] })

  const options = {}
  const output = {}
  if (input.dpop) {
    const keyPair = await client.randomDPoPKeyPair(input.dpop.alg)
    options.DPoP = client.getDPoPHandle(config, keyPair)
    output.dpop_jkt = await thumbprint(keyPair.publicKey)
  }

  const codeVerifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce
  }, options)
  output.par_request_uri = authorizationUrl.searchParams.get('request_uri')
  output.authorization_parameters = [...authorizationUrl.searchParams.keys()].sort()

  // the user agent: the host authenticates and approves, then redirects to the client
  const front = await fetch(authorizationUrl, { redirect: 'manual' })
  const location = front.headers.get('location')
  if (front.status !== 302 && front.status !== 303) {
    throw new Error(`authorization endpoint answered ${front.status}: ${await front.text()}`)
  }

  const tokens = await client.authorizationCodeGrant(
    config, new URL(location),
    { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce,
      idTokenExpected: true },
    undefined, options)
  const claims = tokens.claims()
  output.token = {
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    expires_in: tokens.expires_in,
    scope: tokens.scope,
    has_id_token: typeof tokens.id_token === 'string',
    has_refresh_token: typeof tokens.refresh_token === 'string'
  }
  output.id_token_claims = claims
  output.userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, options)
  process.stdout.write(JSON.stringify(output) + '\n')
}

main().catch((error) => {
  const described = { error: error.name, message: error.message, code: error.code }
  if (error.cause && typeof error.cause === 'object') {
    described.cause = error.cause.error ?? error.cause.message ?? String(error.cause)
    described.cause_description = error.cause.error_description
  }
  process.stdout.write(JSON.stringify(described) + '\n')
  process.exitCode = 1
})
