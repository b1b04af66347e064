// A job list, live: it follows the change feed (GET /changes?since=TOKEN&WAIT=30,
// parked on the server), one request per change and one every 30 s when nothing
// changes. A changed job's row shows its new phase and duration; a new job that the
// list's filters take appears at the top of the first page; a deleted job's row goes.
// Rows are built from the page's <template> and filled with textContent.

import { ACTIVE, request, showPhase, sleep, status } from './common.js';

const form = document.getElementById('job-list');
const WAIT = 30;
const TERMINAL = new Set(['COMPLETED', 'ERROR', 'ABORTED', 'ARCHIVED']);

function jobPath(job) {
  return `/jobs/${encodeURIComponent(job.jobType)}/${encodeURIComponent(job.jobId)}`;
}

function durationText(job) {
  if (!job.startTime) return '';
  const end = job.endTime ? Date.parse(job.endTime) : Date.now();
  const seconds = Math.max(0, (end - Date.parse(job.startTime)) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.floor(seconds);
  const pad = (n) => String(n).padStart(2, '0');
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${pad(whole % 60)} s`;
  if (whole < 86400) return `${Math.floor(whole / 3600)} h ${pad(Math.floor((whole % 3600) / 60))} min`;
  return `${Math.floor(whole / 86400)} d ${pad(Math.floor((whole % 86400) / 3600))} h`;
}

function whenText(iso) {
  return `${iso.slice(0, 19).replace('T', ' ')} UTC`;
}

if (form) {
  const tbody = form.querySelector('tbody');
  const template = document.getElementById('job-row-template');
  const types = (form.dataset.types || '').split(',').filter(Boolean);
  const phases = (form.dataset.phases || '').split(',').filter(Boolean);
  const runId = (form.dataset.runId || '').toLowerCase();
  const firstPage = form.dataset.firstPage === 'true';
  let token = form.dataset.changes;

  function listed(job) {
    if (types.length && !types.includes(job.jobType)) return false;
    if (phases.length ? !phases.includes(job.phase) : job.phase === 'ARCHIVED') return false;
    if (runId && !(job.runId || '').toLowerCase().includes(runId)) return false;
    return true;
  }

  function rowOf(id) {
    return [...tbody.rows].find((row) => row.dataset.job && row.dataset.job.endsWith(`/${id}`));
  }

  function setActions(row, job) {
    const path = jobPath(job);
    for (const button of row.querySelectorAll('[data-cell="actions"] button')) {
      const action = button.dataset.action || button.getAttribute('formaction').split('/').pop();
      button.dataset.action = action;
      button.setAttribute('formaction', `${path}/${action}`);
      button.hidden = (action === 'run' && job.phase !== 'PENDING') ||
        (action === 'abort' && TERMINAL.has(job.phase));
    }
  }

  function newRow(job) {
    const row = template.content.firstElementChild.cloneNode(true);
    const label = job.runId || job.jobId;
    const box = row.querySelector('input[name="job"]');
    box.value = `${job.jobType}/${job.jobId}`;
    box.id = `select-${job.jobId}`;
    const boxLabel = row.querySelector('label');
    boxLabel.htmlFor = box.id;
    boxLabel.textContent = `Select job ${label}`;
    const type = row.querySelector('[data-slot="type"]');
    type.textContent = job.jobType;
    type.href = `/jobs?type=${encodeURIComponent(job.jobType)}`;
    const link = row.querySelector('[data-slot="label"]');
    link.textContent = label;
    link.href = jobPath(job);
    const created = row.querySelector('[data-slot="created"]');
    created.dateTime = job.creationTime;
    created.textContent = whenText(job.creationTime);
    for (const hidden of row.querySelectorAll('[data-cell="actions"] .visually-hidden')) {
      hidden.textContent = ` job ${label}`;
    }
    row.querySelector('[data-action="delete"]').dataset.confirm = `Delete job ${label} and its files?`;
    row.dataset.job = `${job.jobType}/${job.jobId}`;
    return row;
  }

  function update(row, job) {
    row.dataset.version = job.version;
    showPhase(row.querySelector('[data-cell="phase"] [data-phase], [data-cell="phase"] .badge'), job.phase);
    row.querySelector('[data-cell="duration"]').textContent = durationText(job);
    setActions(row, job);
  }

  function apply(changes) {
    for (const id of changes.deleted || []) {
      const row = rowOf(id);
      if (row) row.remove();
    }
    for (const job of changes.jobs || []) {
      let row = rowOf(job.jobId);
      if (row && !listed(job)) {
        row.remove();
        continue;
      }
      if (!row) {
        if (!firstPage || !listed(job)) continue;
        row = newRow(job);
        tbody.prepend(row);
        const empty = document.querySelector('[data-empty]');
        if (empty) empty.remove();
      }
      update(row, job);
    }
    const running = [...tbody.rows].filter((row) => ACTIVE.has(row.querySelector('[data-phase]')?.dataset.phase));
    status(running.length ? `${running.length} job(s) not finished.` : '');
  }

  async function follow() {
    let failures = 0;
    for (;;) {
      let response;
      try {
        response = await request(`/changes?since=${encodeURIComponent(token)}&WAIT=${WAIT}`, {
          headers: { Accept: 'application/json' },
        });
      } catch (failure) {
        failures += 1;
        status('The server does not answer: trying again.');
        await sleep(Math.min(30, 2 ** failures));
        continue;
      }
      if (response.status === 401) {
        status('Sign in again to follow your jobs.');
        return;
      }
      if (!response.ok) {
        failures += 1;
        if (response.status === 400 || failures > 8) {
          status('Live updates stopped: reload the page.');
          return;
        }
        await sleep(Math.min(30, 2 ** failures));
        continue;
      }
      failures = 0;
      const changes = await response.json();
      if (changes.reset) {
        location.reload();
        return;
      }
      apply(changes);
      token = changes.token;
    }
  }

  if (token) follow();
}
