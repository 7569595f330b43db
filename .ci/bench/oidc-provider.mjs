// node-oidc-provider for .ci/bench/peer.sh: in memory, the ci-service client
// (client_credentials, docs:read) and introspection, as Lanyard's dev
// configuration has them. In an empty directory: npm install oidc-provider@9.13.3,
// copy this file there, PORT=3999 node oidc-provider.mjs
import Provider from 'oidc-provider';
const port = Number(process.env.PORT || 3999);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{ client_id: 'ci-service', client_secret: 'ci-service-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'docs:read' }],
  scopes: ['openid', 'docs:read'],
  features: { clientCredentials: { enabled: true }, introspection: { enabled: true }, devInteractions: { enabled: false } },
});
provider.listen(port, '127.0.0.1', () => console.log('listening', port));
