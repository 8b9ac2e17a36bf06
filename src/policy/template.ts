/**
 * A policy's message: text with `{{ path }}` placeholders naming input fields
 * (`{{ request.repository }}`, `{{ artifact.tag }}`), the policy (`{{ policy.name }}`,
 * `{{ policy.version }}`) or what an OPA policy said (`{{ violations }}`). Checked when the policy is
 * saved, so a typo is refused then rather than shown as an empty string to a user who was denied.
 */
import { inputSchema } from './input-schema.ts';
import type { PolicyInput } from './input-schema.ts';
import { PolicyRejected } from './engine.ts';

const placeholder = /\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}/g;
const extra = new Set(['policy.name', 'policy.version', 'violations']);

type Node = { properties?: Record<string, Node>; type?: string };

/** Is this dotted path a scalar (or list, or map) field of the input? */
function documented(path: string): boolean {
  let node: Node = inputSchema as unknown as Node;
  for (const part of path.split('.')) {
    if (node.type === 'object' && !node.properties) return true; // a map (labels, annotations): any key
    const next: Node | undefined = node.properties?.[part];
    if (!next) return false;
    node = next;
  }
  return true;
}

export function checkTemplate(message: string): void {
  for (const m of message.matchAll(placeholder)) {
    const path = m[1] ?? '';
    if (!extra.has(path) && !documented(path)) throw new PolicyRejected(`message: {{ ${path} }} names no input field (docs/policy.md lists them)`);
  }
}

/**
 * The most a rendered message holds: a placeholder can name a label, whose value whoever pushed
 * chose, and the message goes back in the 403 and into the decision log.
 */
export const maxMessageChars = 1024;

export function renderTemplate(message: string, input: PolicyInput, policy: { name: string; version: number }, violations: string[]): string {
  const rendered = message.replace(placeholder, (_all, path: string) => {
    if (path === 'policy.name') return policy.name;
    if (path === 'policy.version') return String(policy.version);
    if (path === 'violations') return violations.join('; ');
    let value: unknown = input;
    for (const part of path.split('.')) value = value && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
    if (value === undefined || value === null) return '';
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
  return rendered.length > maxMessageChars ? `${rendered.slice(0, maxMessageChars - 1)}…` : rendered;
}
