/**
 * RE2 matching (re2js: linear time, whatever the pattern and the text) for the strings that come
 * from whoever pushed an artifact: CEL's `matches()` (rewritten to `re2Matches`, src/policy/cel.ts)
 * and retention's tag patterns. Apart from the CEL engine so that retention, which every server
 * loads, does not load cel-js with it: that loads with the first CEL policy compiled.
 */
import { RE2JS } from 're2js';
import { BoundedMap } from '../bounded-map.ts';

const re2Cache = new BoundedMap<string, RE2JS>(1024);
/** Whether `pattern` (RE2 syntax, linear time) matches somewhere in `text`; throws on a bad pattern. Also retention's tag patterns. */
export function re2Matches(text: string, pattern: string): boolean {
  let compiled = re2Cache.get(pattern);
  if (!compiled) {
    compiled = RE2JS.compile(pattern);
    re2Cache.set(pattern, compiled);
  }
  return compiled.matcher(text).find();
}
