/**
 * The verifiers and parsers, imported together on the first verification (src/trust/evaluate.ts;
 * import only types of this file elsewhere, or the point is lost):
 * with their libraries (@sigstore/*, @peculiar/x509, cbor-x, packageurl-js) they hold ~10 MiB of
 * heap that a registry nobody pushes signatures to should not pay.
 */
export { attestationKind, parseStatement, StatementError, type Statement } from './intoto.ts';
export { verifyNotarySignature } from './notary/index.ts';
export { parseSbom, SbomError, type SbomDocument } from './sbom/index.ts';
export { verifyCosignSignature, verifyDsseEnvelope, verifySigstoreBundle } from './sigstore/index.ts';
