/** Repository names and tags on /v2: the grammar of src/reference.ts, failing as OCI errors. */
import { isRepositoryName, isTag, maxNameLength, nameRule, tagRule } from '../reference.ts';
import { OciError } from './errors.ts';

export function checkName(name: string): string {
  if (name.length > maxNameLength) throw new OciError('NAME_INVALID', `repository name is longer than ${maxNameLength} characters`);
  if (!isRepositoryName(name)) throw new OciError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}: ${nameRule}`);
  return name;
}

export function checkTag(tag: string): string {
  if (!isTag(tag)) throw new OciError('TAG_INVALID', `invalid tag ${JSON.stringify(tag.slice(0, 200))}: ${tagRule}`);
  return tag;
}
