/**
 * Repository patterns of a webhook: full repository names in which `*` stands for any characters
 * within one path segment, `?` for one character other than `/`, and a whole segment `**` for
 * any number of segments (none included: `team/**` matches `team` and `team/a/b`). The first
 * segment is the webhook's namespace, written out: a webhook hears only its own namespace.
 *
 * A pattern is turned into an RE2 expression (re2js), whose matching is linear in the name
 * whatever the pattern, since a namespace admin writes them (see src/trust/sigstore/identity.ts).
 */
import { RE2JS } from 're2js';
import { maxNameLength } from '../../reference.ts';

export const maxPatterns = 32;

/** Why the pattern is refused, or undefined when it is a valid pattern for the namespace. */
export function patternProblem(pattern: string, namespace: string): string | undefined {
  if (pattern.length === 0 || pattern.length > maxNameLength) return `a pattern is 1 to ${maxNameLength} characters`;
  if (!/^[a-z0-9._/*?-]+$/.test(pattern)) return `${JSON.stringify(pattern)}: a pattern uses a-z, 0-9, '.', '_', '-', '/', and the wildcards '*', '?' and '**'`;
  const segments = pattern.split('/');
  if (segments[0] !== namespace)
    return `${JSON.stringify(pattern)}: a pattern starts with the webhook's namespace, as in ${namespace}/** or ${namespace}/app-*`;
  for (const s of segments.slice(1)) {
    if (s === '') return `${JSON.stringify(pattern)}: empty path segment`;
    if (s.includes('**') && s !== '**') return `${JSON.stringify(pattern)}: '**' stands alone as a whole segment (${namespace}/**/web), '*' within one`;
  }
  return undefined;
}

/** A matcher for valid patterns (see patternProblem): whether a repository name matches any of them. */
export function repositoryMatcher(patterns: readonly string[]): (repository: string) => boolean {
  if (patterns.length === 0) return () => false;
  const re = RE2JS.compile(`(?:${patterns.map(toRegex).join('|')})`);
  return (repository) => re.matches(repository);
}

function toRegex(pattern: string): string {
  const [head = '', ...rest] = pattern.split('/');
  let out = quote(head);
  for (const s of rest) {
    if (s === '**') out += '(?:/[^/]+)*';
    else out += `/${[...s].map((c) => (c === '*' ? '[^/]*' : c === '?' ? '[^/]' : quote(c))).join('')}`;
  }
  return out;
}

const quote = (text: string): string => text.replace(/[.\\+*?^$()[\]{}|-]/g, (c) => `\\${c}`);
