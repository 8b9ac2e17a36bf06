/**
 * The grammar of repository names and tags, as the OCI Distribution Spec writes it, and what a
 * namespace is. One home for these rules, used by the registry core, the access controller, the
 * management API and trust. A leaf, like distribution's `reference` package: it imports nothing
 * and throws nothing; each caller turns a failed check into its own error (NAME_INVALID on /v2,
 * a 400 on /api/v1, invalid_scope at /token).
 */

/** One path component: lowercase letters and digits, joined by '.', '_', '__' or dashes. */
const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const namePattern = new RegExp(`^${component}(?:/${component})*$`);
const componentPattern = new RegExp(`^${component}$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Longest repository name accepted; like distribution, to keep keys and URLs bounded. */
export const maxNameLength = 255;

export const nameRule = "use lowercase path components [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'";
export const namespaceRule = "use lowercase letters and digits, joined by '.', '_', '__' or '-' (one path component)";
export const tagRule = "at most 128 characters of [a-zA-Z0-9_.-], not starting with '.' or '-'";

export function isRepositoryName(name: string): boolean {
  return name.length <= maxNameLength && namePattern.test(name);
}

/** A namespace is one path component: the first of every repository name in it. */
export function isNamespaceName(name: string): boolean {
  return name.length <= maxNameLength && componentPattern.test(name);
}

export function isTag(tag: string): boolean {
  return tagPattern.test(tag);
}

/** The namespace of a repository: its first path segment (`team` for `team/app/api`). */
export function namespaceOf(repository: string): string {
  return repository.split('/', 1)[0] as string;
}
