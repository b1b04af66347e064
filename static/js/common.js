// What the pages' scripts share: the CSRF token, phases, fetching, swapping live parts.
// Everything a user or a definition supplies is put in the page as text (textContent),
// or comes in server-rendered, escaped HTML that replaces a part of the page.

export const ACTIVE = new Set(['PENDING', 'QUEUED', 'EXECUTING']);
export const TERMINAL = new Set(['COMPLETED', 'ERROR', 'ABORTED', 'ARCHIVED']);
// The badge colours of opus/client/views.py (the phase is always written as text too).
const PHASE_STYLES = {
  PENDING: 'text-bg-secondary',
  QUEUED: 'text-bg-info',
  EXECUTING: 'text-bg-primary',
  COMPLETED: 'text-bg-success',
  ERROR: 'text-bg-danger',
  ABORTED: 'text-bg-warning',
  ARCHIVED: 'text-bg-light',
};
const UWS_NS = 'http://www.ivoa.net/xml/UWS/v1.0';

/** The session's CSRF token (empty without a session), for every change a script makes. */
export function csrfToken() {
  return document.body.dataset.csrfToken || '';
}

/** Show ``phase`` in a badge element. */
export function showPhase(badge, phase) {
  badge.className = `badge ${PHASE_STYLES[phase] || 'text-bg-dark'}`;
  badge.dataset.phase = phase;
  badge.textContent = phase;
}

export function sleep(seconds) {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

/** A fetch of this site that sends the session cookie and the CSRF token. */
export function request(url, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = csrfToken();
  if (token && options.method && options.method !== 'GET') headers.set('X-CSRF-Token', token);
  return fetch(url, { credentials: 'same-origin', cache: 'no-store', ...options, headers });
}

/** The job a UWS answer describes: {phase, version, progress, rest}, from JSON or from
 * UWS XML (which gives the phase only). ``progress`` is the job's latest progress
 * ({percent, message, time} or null); ``rest`` is the rest of the job as a string, which
 * tells whether something other than the progress changed. */
export async function readJobAnswer(response) {
  const type = response.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    const body = await response.json();
    const { progress = null, ...job } = body.job || body;
    return { phase: job.phase, version: job.version, progress, rest: JSON.stringify(job) };
  }
  const doc = new DOMParser().parseFromString(await response.text(), 'application/xml');
  const phase = doc.getElementsByTagNameNS(UWS_NS, 'phase')[0];
  return { phase: phase ? phase.textContent.trim() : '', version: undefined };
}

/** Replace the parts of the page marked data-live="name" by those of a fresh copy of
 * the page (server-rendered and escaped): the scripts of the copy never run. */
export async function refreshParts(names) {
  const response = await request(location.pathname + location.search, {
    headers: { Accept: 'text/html' },
  });
  if (response.redirected && new URL(response.url).pathname === '/login') {
    location.reload();
    return null;
  }
  if (!response.ok) return response.status;
  const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
  const focused = document.activeElement && document.activeElement.id;
  for (const name of names) {
    const now = document.querySelector(`[data-live="${name}"]`);
    const next = fresh.querySelector(`[data-live="${name}"]`);
    if (now && next) now.replaceWith(document.adoptNode(next));
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  return response.status;
}

/** Say something in the page's live status line (read by screen readers). */
export function status(text) {
  const line = document.querySelector('[data-live-status]');
  if (line) line.textContent = text;
}
