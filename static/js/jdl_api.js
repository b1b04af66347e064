// The /jdl HTTP API as the editor's pages use it: with the session (common.request
// sends the CSRF token of every change), answers read as JSON or text, and the
// server's one-line reason of a refusal.

import { request } from './common.js';

export const FORMATS = {
  yaml: { type: 'application/x-yaml', extension: 'yml' },
  json: { type: 'application/json', extension: 'json' },
  votable: { type: 'application/x-votable+xml', extension: 'xml' },
};

/** The path of definition ``name``'s part (``/jdl/NAME/draft``…). */
export function jdlPath(name, rest = '') {
  return `/jdl/${encodeURIComponent(name)}${rest}`;
}

/** An API call: {ok, status, body (JSON object or text; text when ``raw`` is true),
 * message (the reason, when refused), response}. A network failure is status 0. */
export async function call(method, path, { body, type, accept, raw = false } = {}) {
  const headers = {};
  if (type) headers['Content-Type'] = type;
  if (accept) headers.Accept = accept;
  let response;
  try {
    response = await request(path, { method, body, headers });
  } catch (error) {
    return { ok: false, status: 0, body: null, message: `the server did not answer (${error.message})` };
  }
  const kind = response.headers.get('Content-Type') || '';
  let parsed = null;
  if (response.status !== 204) {
    const json = kind.includes('json') && !(raw && response.ok);
    parsed = json ? await response.json().catch(() => null) : await response.text();
  }
  const message = response.ok ? '' : reason(response, parsed);
  return { ok: response.ok, status: response.status, body: parsed, message, response };
}

function reason(response, body) {
  if (body && typeof body === 'object' && body.error && body.error.message) return body.error.message;
  if (response.status === 404) return 'not found';
  return `${response.status} ${response.statusText}`.trim();
}

/** The problems an answer lists ({field, line, message}), or its error as one. */
export function problemsOf(answer) {
  const body = answer.body && typeof answer.body === 'object' ? answer.body : {};
  const listed = body.problems || (body.error && body.error.problems);
  if (Array.isArray(listed) && listed.length) return listed;
  if (!answer.ok && answer.message) {
    return [{ field: body.error ? body.error.field || null : null, line: null, message: answer.message }];
  }
  return [];
}

/** A time of the API (ISO 8601) as the pages write times: "2026-11-22 10:15:03 UTC". */
export function when(value) {
  if (!value) return '';
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? String(value) : `${time.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A table cell holding ``text`` (as text). */
export function cell(text, tag = 'td') {
  const made = document.createElement(tag);
  made.textContent = text ?? '';
  return made;
}

/** A link to ``href`` reading ``text``. */
export function link(href, text) {
  const made = document.createElement('a');
  made.href = href;
  made.textContent = text;
  return made;
}

/** What a definition's list entry says of its draft ("draft by ann, saved …, submitted …"). */
export function draftText(draft) {
  if (!draft) return '';
  const parts = [`by ${draft.author}`];
  if (draft.updated) parts.push(`saved ${when(draft.updated)}`);
  parts.push(draft.submitted ? `submitted ${when(draft.submitted)}` : 'not submitted');
  return parts.join(', ');
}
