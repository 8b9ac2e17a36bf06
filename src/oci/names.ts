/** Repository names and tags, with the grammar of the OCI Distribution Spec. */
import { OciError } from './errors.ts';

const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const namePattern = new RegExp(`^${component}(?:/${component})*$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** Longest repository name accepted; like distribution, to keep keys and URLs bounded. */
export const maxNameLength = 255;

export function checkName(name: string): string {
  if (name.length > maxNameLength) {
    throw new OciError('NAME_INVALID', `repository name is longer than ${maxNameLength} characters`);
  }
  if (!namePattern.test(name)) {
    throw new OciError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}: use lowercase path components [a-z0-9] joined by '.', '_', '__' or '-', separated by '/'`);
  }
  return name;
}

export const isTag = (tag: string): boolean => tagPattern.test(tag);

export function checkTag(tag: string): string {
  if (!isTag(tag)) {
    throw new OciError('TAG_INVALID', `invalid tag ${JSON.stringify(tag.slice(0, 200))}: at most 128 characters of [a-zA-Z0-9_.-], not starting with '.' or '-'`);
  }
  return tag;
}
