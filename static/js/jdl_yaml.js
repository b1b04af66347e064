// The YAML text of a job definition and the plain object the editor's form edits.
//
// Scalars are read as the text written (js-yaml's failsafe schema, plus null): the
// server keeps `default: 1.50` as "1.50" and `version: 1.10` as "1.10", so the form must
// show what was written, not what a number became. Writing puts the known keys in the
// order of docs/jdl.md (then any other key, kept so the server can name it), strings
// that YAML would type quoted, multi-line text (the script) as literal blocks.

import { FAILSAFE_SCHEMA, dump, load, types } from '../vendor/js-yaml/js-yaml.js';

export const TOP_KEYS = [
  'name', 'annotation', 'version', 'doculink', 'type', 'subtype', 'contact_name',
  'contact_email', 'execution_duration', 'quote', 'source', 'parameters', 'used', 'generated',
  'script',
];
const SOURCE_KEYS = ['git', 'ref'];
export const ROW_KEYS = {
  parameters: [
    'name', 'datatype', 'default', 'required', 'normalize', 'annotation', 'options', 'min',
    'max', 'unit', 'ucd', 'utype',
  ],
  used: ['name', 'default', 'content_type', 'multiplicity', 'url', 'annotation'],
  generated: ['name', 'default', 'content_type', 'multiplicity', 'annotation'],
};
export const ROW_KINDS = Object.keys(ROW_KEYS);
// What PyYAML (the server's reader) takes for true in a boolean field.
const TRUE = new Set(['true', 'True', 'TRUE', 'yes', 'Yes', 'YES', 'on', 'On', 'ON']);
const SCHEMA = FAILSAFE_SCHEMA.extend({ implicit: [types.null] });

/** A YAML text that is not a definition: the reason and its line (1-based, or null). */
export class YamlProblem extends Error {
  constructor(message, line) {
    super(message);
    this.line = line;
  }
}

/** The definition object of a YAML text (YamlProblem when it does not parse, or is not
 * a mapping). An empty text is an empty definition. */
export function parseDefinition(text) {
  let data;
  try {
    data = load(text, { schema: SCHEMA });
  } catch (error) {
    const line = error.mark ? error.mark.line + 1 : null;
    throw new YamlProblem(error.reason || String(error.message).split('\n')[0], line);
  }
  if (data === undefined || data === null) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new YamlProblem('a definition is a mapping of fields (name: …, parameters: …)', 1);
  }
  return data;
}

/** The YAML text of a definition object. */
export function writeDefinition(data) {
  return dump(ordered(data), { lineWidth: -1, noRefs: true });
}

function ordered(data) {
  const result = inOrder(data, TOP_KEYS);
  if (isMapping(result.source)) result.source = inOrder(result.source, SOURCE_KEYS);
  for (const kind of ROW_KINDS) {
    if (Array.isArray(result[kind])) {
      result[kind] = result[kind].map((row) => (isMapping(row) ? inOrder(row, ROW_KEYS[kind]) : row));
    }
  }
  return result;
}

function inOrder(object, keys) {
  const result = {};
  for (const key of keys) if (object[key] !== undefined) result[key] = object[key];
  for (const [key, value] of Object.entries(object)) {
    if (!keys.includes(key) && value !== undefined) result[key] = value;
  }
  return result;
}

export function isMapping(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Whether a boolean field's value (text, as read) is true. */
export function isTrue(value) {
  return value === true || TRUE.has(String(value ?? '').trim());
}

/** The parts of a problem's field path: "parameters.nsteps.default",
 * "parameters[0].default" and "parameters.0.options[1]" all work; a number is an
 * index, any other part a name. */
export function parsePath(path) {
  if (!path) return [];
  const parts = [];
  for (const piece of String(path).split('.')) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(piece);
    if (!match) {
      parts.push(piece);
      continue;
    }
    if (match[1]) parts.push(/^\d+$/.test(match[1]) ? Number(match[1]) : match[1]);
    for (const index of match[2].matchAll(/\[(\d+)\]/g)) parts.push(Number(index[1]));
  }
  return parts;
}

/** The line (1-based) of a field path in a YAML text as the editor writes it (block
 * style), or the nearest line found, or null: for problems the server gave no line. */
export function lineOf(text, path) {
  const parts = parsePath(path);
  if (!parts.length) return null;
  const lines = text.split('\n');
  const top = lines.findIndex((line) => line.startsWith(`${parts[0]}:`));
  if (top < 0) return null;
  if (!ROW_KINDS.includes(parts[0]) || parts.length < 2) return top + 1;
  let end = lines.findIndex((line, i) => i > top && /^[^\s#-]/.test(line));
  if (end < 0) end = lines.length;
  const entries = [];
  for (let i = top + 1; i < end; i += 1) {
    if (/^\s*- /.test(lines[i]) && indent(lines[i]) === indent(firstEntry(lines, top, end))) {
      entries.push(i);
    }
  }
  const index = typeof parts[1] === 'number'
    ? parts[1]
    : entries.findIndex((start, n) => entryLines(lines, entries, n, end)
      .some((line) => new RegExp(`^\\s*(- )?name: ['"]?${escape(parts[1])}['"]?\\s*$`).test(line)));
  if (index < 0 || index >= entries.length) return top + 1;
  const start = entries[index];
  if (parts.length < 3) return start + 1;
  const found = entryLines(lines, entries, index, end)
    .findIndex((line) => new RegExp(`^\\s*(- )?${escape(parts[2])}:`).test(line));
  return found < 0 ? start + 1 : start + found + 1;
}

function firstEntry(lines, top, end) {
  for (let i = top + 1; i < end; i += 1) if (/^\s*- /.test(lines[i])) return lines[i];
  return '';
}

function entryLines(lines, entries, n, end) {
  return lines.slice(entries[n], n + 1 < entries.length ? entries[n + 1] : end);
}

function indent(line) {
  return line.length - line.trimStart().length;
}

function escape(text) {
  return String(text).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
