// An OpenID provider for the integration tests: discovery, JWKS and a token endpoint that
// implements the client-credentials grant. Usage: node server.mjs PORT
// Prints one JSON line when ready; a line "rotate" on stdin adds a new signing key.
import { OAuth2Server } from 'oauth2-mock-server';
import readline from 'node:readline';

const port = Number(process.argv[2]);
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(port, '127.0.0.1');
console.log(JSON.stringify({ ready: true, issuer: server.issuer.url }));

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line.trim() === 'rotate') {
    const key = await server.issuer.keys.generate('RS256');
    console.log(JSON.stringify({ rotated: key.kid }));
  }
});
process.stdin.on('end', () => server.stop().then(() => process.exit(0)));
