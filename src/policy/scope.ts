/**
 * Which requests a policy decides: its namespace (a namespace's own policy applies only there),
 * and its scope's patterns. Namespace patterns match the namespace; repository patterns match the
 * whole repository name. `*` matches within a path segment, `**` across segments: `prod/*`
 * matches prod/app but not prod/app/api; `prod/**` matches both; `**` matches everything.
 */
import type { PolicyDocument } from './document.ts';

/** A glob as a RegExp. Patterns hold only [a-z0-9._-/*] (document.ts), so only `.` needs escaping. */
function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      // `a/**` also matches `a` itself
      if (re.endsWith('/') && i + 2 === pattern.length) re = `${re.slice(0, -1)}(/.*)?`;
      else re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '.') re += '\\.';
    else re += c;
  }
  return new RegExp(`^${re}$`);
}

export function scopeMatcher(doc: Pick<PolicyDocument, 'namespace' | 'scope'>): (namespace: string, repository: string) => boolean {
  const namespaces = doc.scope.namespaces.map(globToRegExp);
  const repositories = doc.scope.repositories.map(globToRegExp);
  const owner = doc.namespace;
  return (namespace, repository) =>
    (owner === undefined || owner === namespace) && namespaces.some((n) => n.test(namespace)) && repositories.some((r) => r.test(repository));
}
