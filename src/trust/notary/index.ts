/** Notary Project (notation) signatures: JWS and COSE envelopes checked against a trust policy. */
export { verifyNotarySignature, type NotaryInput } from './verify.ts';
export { parseTrustPolicy, type TrustPolicy, type TrustPolicyDocument } from './policy.ts';
