import { describe, expect, it } from 'vitest';
import { parseTrustPolicy } from '../../src/trust/notary/index.ts';

const base = () => ({
  name: 'p',
  registryScopes: ['registry.example.com/acme/app'],
  signatureVerification: { level: 'strict' },
  trustStores: ['ca:acme'],
  trustedIdentities: ['x509.subject: C=US, ST=WA, O=acme'],
});
const doc = (...policies: Record<string, unknown>[]) => ({ version: '1.0', trustPolicies: policies });

describe('parseTrustPolicy', () => {
  it('accepts the documents of the Notary Project specification', () => {
    const parsed = parseTrustPolicy(
      doc(
        { ...base(), name: 'wabbit', registryScopes: ['registry.acme-rockets.io/software/net-monitor', 'registry.acme-rockets.io/software/net-logger'] },
        { name: 'unsigned-image', registryScopes: ['registry.wabbit-networks.io/software/unsigned/net-utils'], signatureVerification: { level: 'skip' } },
        {
          ...base(),
          name: 'use-expired-image',
          registryScopes: ['registry.acme-rockets.io/software/legacy/metrics'],
          signatureVerification: { level: 'strict', override: { expiry: 'log', revocation: 'skip' } },
          trustedIdentities: ['*'],
        },
        {
          ...base(),
          name: 'global',
          registryScopes: ['*'],
          signatureVerification: { level: 'audit' },
          trustStores: ['ca:acme-rockets', 'ca:acme-rockets-ca2', 'tsa:acme-tsa'],
          trustedIdentities: ['x509.subject: C=US, ST=WA, L=Seattle, O=acme-rockets.io, OU=Finance, CN=SecureBuilder', 'x509.subject: O=wabbit\\, inc'],
        },
      ),
    );
    expect(parsed.trustPolicies.map((p) => p.name)).toEqual(['wabbit', 'unsigned-image', 'use-expired-image', 'global']);
  });

  const bad: [string, unknown, string][] = [
    ['not an object', null, 'the document must be a JSON object'],
    ['a wrong version', { ...doc(base()), version: '2.0' }, 'version: must be "1.0"'],
    ['no policies', doc(), 'trustPolicies: must hold at least one trust policy'],
    ['a missing field', { version: '1.0' }, 'trustPolicies: is required'],
    ['an unknown level', doc({ ...base(), signatureVerification: { level: 'paranoid' } }), 'trustPolicies[0].signatureVerification.level: Invalid option'],
    [
      'an override of integrity',
      doc({ ...base(), signatureVerification: { level: 'strict', override: { integrity: 'log' } } }),
      'override: Unrecognized key: "integrity"',
    ],
    ['skip of expiry', doc({ ...base(), signatureVerification: { level: 'strict', override: { expiry: 'skip' } } }), 'override.expiry: Invalid option'],
    ['a misspelt field', doc({ ...base(), trustedIdentity: ['*'] }), 'trustPolicies[0]: Unrecognized key: "trustedIdentity"'],
    ['a bad trust store', doc({ ...base(), trustStores: ['acme'] }), 'trustPolicies[0].trustStores[0]: must be "ca:NAME"'],
    ['no trust store', doc({ ...base(), trustStores: [] }), 'trustPolicies[0].trustStores: must name at least one trust store'],
    ['no identities', doc({ ...base(), trustedIdentities: [] }), 'trustPolicies[0].trustedIdentities: must list at least one identity'],
    ['an identity without prefix', doc({ ...base(), trustedIdentities: ['CN=x'] }), 'trustedIdentities[0]: "CN=x" must be "*" or start with "x509.subject:"'],
    ['an identity that is no DN', doc({ ...base(), trustedIdentities: ['x509.subject: garbage'] }), 'trustedIdentities[0]: "garbage" is not TYPE=value'],
    ['an unknown DN attribute', doc({ ...base(), trustedIdentities: ['x509.subject: FOO=a'] }), 'unknown attribute type "FOO"'],
    ['overlapping identities', doc({ ...base(), trustedIdentities: ['x509.subject: C=US, O=a', 'x509.subject: O=a'] }), 'entries 0 and 1 overlap'],
    ['"*" among identities', doc({ ...base(), trustedIdentities: ['*', 'x509.subject: CN=a'] }), '"*" must be the only identity'],
    ['"*" among scopes', doc({ ...base(), registryScopes: ['*', 'r.io/a/b'] }), '"*" must be the only scope of its policy'],
    ['a scope without host', doc({ ...base(), registryScopes: ['app'] }), '"app" is not a fully qualified repository'],
    ['a wildcard in a scope', doc({ ...base(), registryScopes: ['r.io/a/*'] }), '"r.io/a/*" may not contain "*"'],
    [
      'two policies for one repository',
      doc(base(), { ...base(), name: 'q', registryScopes: ['other.io/acme/app'] }),
      'covers repository acme/app, which policy "p" already covers',
    ],
    ['two global policies', doc({ ...base(), registryScopes: ['*'] }, { ...base(), name: 'q', registryScopes: ['*'] }), 'only one policy may use "*"'],
    ['duplicate names', doc(base(), { ...base(), registryScopes: ['r.io/x/y'] }), 'trustPolicies[1].name: "p" is already the name of trustPolicies[0]'],
    ['a global skip', doc({ name: 's', registryScopes: ['*'], signatureVerification: { level: 'skip' } }), 'a policy at level "skip" must name repositories'],
    ['a skip with trust stores', doc({ ...base(), signatureVerification: { level: 'skip' } }), 'must not name trust stores or trusted identities'],
  ];

  it.each(bad)('rejects %s with a message naming the field', (_what, input, message) => {
    expect(() => parseTrustPolicy(input)).toThrow(message);
  });
});
