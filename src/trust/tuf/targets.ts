/**
 * Target naming. Each signed tag is one target, `<repository>:<tag>` (`team/app:1.0`), whose
 * file is the tag's manifest: length = its size, hashes = its digest. With consistent snapshots a
 * client fetches it as `targets/<dirname>/<hex>.<basename>` (`targets/team/<hex>.app:1.0`).
 */
import { TargetFile } from '@tufjs/models';
import { isRepositoryName, isTag } from '../../reference.ts';
import type { SignedTag } from './source.ts';

const digestPattern = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/;

export const targetPath = (repository: string, tag: string): string => `${repository}:${tag}`;

const inNamespace = (namespace: string, repository: string): boolean => repository === namespace || repository.startsWith(`${namespace}/`);

/** The targets of a namespace's signed tags, by path. Entries that cannot be targets are skipped and reported. */
export function targetFiles(namespace: string, tags: SignedTag[], skipped: (tag: SignedTag, why: string) => void = () => {}): Record<string, TargetFile> {
  const out: Record<string, TargetFile> = {};
  for (const t of tags) {
    if (!inNamespace(namespace, t.repository) || !isRepositoryName(t.repository)) skipped(t, 'repository outside the namespace or invalid');
    else if (!isTag(t.tag)) skipped(t, 'invalid tag');
    else if (!digestPattern.test(t.digest)) skipped(t, 'not a sha256 or sha512 digest');
    else if (!Number.isSafeInteger(t.size) || t.size < 0) skipped(t, 'invalid size');
    else {
      const path = targetPath(t.repository, t.tag);
      const [algorithm, hex] = t.digest.split(':') as [string, string];
      out[path] = new TargetFile({
        path,
        length: t.size,
        hashes: { [algorithm]: hex },
        unrecognizedFields: { custom: { mediaType: t.mediaType, repository: t.repository, tag: t.tag } },
      });
    }
  }
  return out;
}

export interface TargetRequest {
  repository: string;
  tag: string;
  digest: string;
}

/**
 * The manifest a target file URL names: the path segments after `targets/`, the last one being
 * `<hex>.<basename>`. Undefined for anything that is not a target of this namespace.
 */
export function parseTargetFile(namespace: string, segments: string[]): TargetRequest | undefined {
  const last = segments.at(-1);
  const m = last === undefined ? null : /^([0-9a-f]{64}|[0-9a-f]{128})\.([^:]+):([^:]+)$/.exec(last);
  if (!m) return undefined;
  const [, hex, base, tag] = m as unknown as [string, string, string, string];
  const repository = [...segments.slice(0, -1), base].join('/');
  if (!inNamespace(namespace, repository) || !isRepositoryName(repository) || !isTag(tag)) return undefined;
  return { repository, tag, digest: `${hex.length === 64 ? 'sha256' : 'sha512'}:${hex}` };
}
