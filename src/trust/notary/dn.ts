/**
 * Distinguished names as trust policies write them (`x509.subject: C=US, ST=WA, O=acme`) and as
 * certificates carry them. An identity matches a certificate when every attribute it names is
 * present in the certificate's subject with the same value (the Notary Project's partial match).
 */
import type { X509Certificate } from '@peculiar/x509';

/** One attribute: a short name as @peculiar/x509 prints it (CN, O, …) or a dotted OID. */
export interface DnAttribute {
  type: string;
  value: string;
}

const KNOWN_TYPES = new Set(['CN', 'L', 'ST', 'O', 'OU', 'C', 'DC', 'E', 'G', 'I', 'SN', 'T']);
const ALIASES: Record<string, string> = { S: 'ST', EMAILADDRESS: 'E', EMAIL: 'E', GIVENNAME: 'G', SURNAME: 'SN' };
const OID = /^[0-2](?:\.(?:0|[1-9][0-9]*))+$/;

/** Splits on separators that are not escaped with a backslash. */
function splitUnescaped(text: string, separators: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text.charAt(i + 1);
      i++;
    } else if (separators.includes(ch)) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/** Trims unescaped spaces and removes escapes (`\,` `\;` `\\` `\ ` and hex pairs like `\2C`). */
function unescapeValue(raw: string): string {
  let start = 0;
  let end = raw.length;
  while (start < end && raw.charAt(start) === ' ') start++;
  while (end > start && raw.charAt(end - 1) === ' ' && !(end - 2 >= start && raw.charAt(end - 2) === '\\')) end--;
  const text = raw.slice(start, end);
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const hex = text.slice(i + 1, i + 3);
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else {
      out += text.charAt(i + 1);
      i++;
    }
  }
  return out;
}

/** Parses `C=US, ST=WA, O=acme`; throws an Error naming what is wrong. */
export function parseDn(text: string): DnAttribute[] {
  const attributes: DnAttribute[] = [];
  for (const part of splitUnescaped(text, ',;+')) {
    if (part.trim() === '') throw new Error(`empty attribute in "${text}"`);
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`"${part.trim()}" is not TYPE=value`);
    const rawType = part.slice(0, eq).trim();
    const upper = rawType.toUpperCase();
    const type = OID.test(rawType) ? rawType : (ALIASES[upper] ?? upper);
    if (!OID.test(type) && !KNOWN_TYPES.has(type)) throw new Error(`unknown attribute type "${rawType}"`);
    const value = unescapeValue(part.slice(eq + 1));
    if (value === '') throw new Error(`attribute ${type} has an empty value`);
    if (attributes.some((a) => a.type === type)) throw new Error(`attribute ${type} appears twice`);
    attributes.push({ type, value });
  }
  return attributes;
}

const escapeValue = (value: string): string => value.replace(/([,;+\\])/g, '\\$1');

/** `CN=alice,O=Example`: compact, in the order given. */
export function formatDn(attributes: readonly DnAttribute[]): string {
  return attributes.map((a) => `${a.type}=${escapeValue(a.value)}`).join(',');
}

/** The subject of a certificate as attributes, in the certificate's order. */
export function subjectOf(cert: X509Certificate): DnAttribute[] {
  const out: DnAttribute[] = [];
  for (const rdn of cert.subjectName.toJSON()) {
    for (const [type, values] of Object.entries(rdn)) {
      for (const value of values) out.push({ type, value });
    }
  }
  return out;
}

/** Every attribute of `identity` is present, with the same value, in `subject`. */
export function dnMatches(identity: readonly DnAttribute[], subject: readonly DnAttribute[]): boolean {
  return identity.every((want) => subject.some((have) => have.type === want.type && have.value === want.value));
}
