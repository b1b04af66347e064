// A job page, live: the job is followed with UWS's WAIT and PHASE (parked on the
// server, no thread held), so a phase change shows within a second and an idle page
// asks once every 30 s. While the job executes, WAIT lasts 5 s and stdout and stderr are read
// again (conditional requests: 304 while they are unchanged). The provenance part is
// provenance.js's, drawn again when the job's end brings it.
// The progress bar shows the latest progress the job's script reported (the job's
// JSON has it): a progress report wakes no WAIT (it is not a phase change), so while a
// job that reports its progress executes, WAIT lasts 2 s. A new progress alone changes
// the bar, not the rest of the page (the job's other fields say whether to refresh it).

import { ACTIVE, readJobAnswer, refreshParts, request, showPhase, sleep, status } from './common.js';
import { enhanceProvenance } from './provenance.js';

const root = document.getElementById('job');
const IDLE_WAIT = 30;
const EXECUTING_WAIT = 5;
const PROGRESS_WAIT = 2;
const REPORTING = new Set(['QUEUED', 'EXECUTING']);
const TAIL = 1024 * 1024;

if (root) {
  const jobPath = root.dataset.jobPath;
  let phase = root.dataset.phase;
  let etag = null;
  let rest = null;
  let reporting = false;
  const streamTags = {};

  // The job as the server has it now ({phase} or null for "unchanged"); the ETag of
  // the answer is kept for the next request.
  async function readJob(wait) {
    // PHASE: WAIT answers at once if the job has left the phase the page shows.
    const url = wait ? `${jobPath}?WAIT=${wait}&PHASE=${encodeURIComponent(phase)}` : jobPath;
    const headers = { Accept: 'application/json' };
    if (etag) headers['If-None-Match'] = etag;
    const response = await request(url, { headers });
    if (response.status === 304) return null;
    if (response.status === 401 || response.status === 403 || response.status === 404) {
      return { gone: response.status };
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    etag = response.headers.get('ETag');
    return readJobAnswer(response);
  }

  function showNewPhase(next) {
    if (!next || next === phase) return false;
    phase = next;
    root.dataset.phase = next;
    const badge = root.querySelector('[data-live-phase] [data-phase]');
    if (badge) showPhase(badge, next);
    return true;
  }

  // Show the job's latest progress ({percent, message} or null) while the job is
  // queued or executes; hide the bar otherwise. The bar's width is set here (the pages'
  // CSP allows no style attribute), from aria-valuenow, which the server writes too.
  function showProgress(progress) {
    const box = root.querySelector('[data-live-progress]');
    if (!box) return;
    const bar = box.querySelector('[role="progressbar"]');
    if (progress !== undefined) {
      box.hidden = !progress || !REPORTING.has(phase);
      if (!box.hidden) {
        const percent = Math.min(100, Math.max(0, Number(progress.percent) || 0));
        const text = `${percent} %`;
        bar.setAttribute('aria-valuenow', String(percent));
        bar.setAttribute('aria-valuetext', progress.message ? `${text}: ${progress.message}` : text);
        box.querySelector('[data-progress-percent]').textContent = text;
        box.querySelector('[data-progress-message]').textContent = progress.message || '';
      }
    }
    reporting = !box.hidden;
    box.querySelector('[data-progress-bar]').style.width = `${Number(bar.getAttribute('aria-valuenow'))}%`;
  }

  async function refreshStream(name) {
    const headers = { Range: `bytes=-${TAIL}` };
    if (streamTags[name]) headers['If-None-Match'] = streamTags[name];
    const response = await request(`${jobPath}/${name}`, { headers });
    if (response.status === 304 || !response.ok) return;
    streamTags[name] = response.headers.get('ETag');
    let text = await response.text();
    // A suffix range longer than the file is the whole file (206 from byte 0): only a
    // tail that starts inside the file is cut to its first whole line.
    const range = /^bytes (\d+)-/.exec(response.headers.get('Content-Range') || '');
    const start = range ? Number(range[1]) : 0;
    if (response.status === 206 && start > 0 && text.includes('\n')) {
      text = text.slice(text.indexOf('\n') + 1);
    }
    const shown = root.querySelector(`[data-stream="${name}"]`);
    if (!shown || !text) return;
    if (shown.tagName === 'PRE') {
      const atEnd = shown.scrollTop + shown.clientHeight >= shown.scrollHeight - 4;
      shown.textContent = text;
      if (atEnd) shown.scrollTop = shown.scrollHeight;
    } else {
      const pre = document.createElement('pre');
      pre.className = 'preview log';
      pre.dataset.stream = name;
      pre.tabIndex = 0;
      pre.setAttribute('aria-label', `${name} of the job`);
      pre.textContent = text;
      shown.replaceWith(pre);
    }
  }

  async function follow() {
    let failures = 0;
    let first = true;
    while (first || ACTIVE.has(phase)) {
      try {
        const executing = reporting ? PROGRESS_WAIT : EXECUTING_WAIT;
        const wait = first ? 0 : phase === 'EXECUTING' ? executing : IDLE_WAIT;
        const answer = await readJob(wait);
        failures = 0;
        if (answer && answer.gone) {
          status(answer.gone === 404 ? 'This job no longer exists.' : 'Sign in again to follow this job.');
          return;
        }
        if (answer) {
          const changed = showNewPhase(answer.phase);
          // The first answer tells whether the job changed since the page was made;
          // a later one changed something, if only its progress.
          const others = answer.rest !== rest;
          rest = answer.rest;
          if (changed || (!first && others)) {
            await refreshParts(['status', 'results', 'streams', 'provenance']);
            enhanceProvenance();
          }
          showProgress(answer.progress);
        }
        if (phase === 'EXECUTING') {
          await refreshStream('stdout');
          await refreshStream('stderr');
        }
      } catch (failure) {
        failures += 1;
        status('The server does not answer: trying again.');
        await sleep(Math.min(30, 2 ** failures));
        continue;
      }
      first = false;
      status('');
    }
  }

  enhanceProvenance();
  showProgress(undefined); // as the server drew it
  follow();
}
