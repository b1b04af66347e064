// /admin/jdl: the job definitions (GET /jdl) and, for admins, the drafts waiting for
// approval (GET /jdl?state=submitted), each linking to its editor. The "New definition"
// form is a plain GET form: the server sends it on to the new definition's editor.

import { status } from './common.js';
import { call, cell, draftText, link, when } from './jdl_api.js';

function editorLink(name) {
  return link(`/admin/jdl/${encodeURIComponent(name)}`, name);
}

function showDefinitions(definitions) {
  const rows = document.querySelector('[data-definition-rows]');
  rows.replaceChildren(...definitions.map((entry) => {
    const row = document.createElement('tr');
    const name = cell('', 'th');
    name.scope = 'row';
    name.append(editorLink(entry.name));
    row.append(
      name,
      cell(entry.state),
      cell(entry.version),
      cell(entry.revision === null || entry.revision === undefined ? '' : String(entry.revision)),
      cell(draftText(entry.draft)),
      cell(entry.annotation),
    );
    row.lastChild.className = 'annotation';
    return row;
  }));
  document.querySelector('[data-definitions-empty]').hidden = definitions.length > 0;
}

function showQueue(definitions) {
  const section = document.querySelector('[data-queue]');
  const rows = section.querySelector('[data-queue-rows]');
  rows.replaceChildren(...definitions.map((entry) => {
    const row = document.createElement('tr');
    const name = cell('', 'th');
    name.scope = 'row';
    name.append(editorLink(entry.name));
    const draft = entry.draft || {};
    row.append(name, cell(draft.author), cell(when(draft.submitted)), cell(entry.annotation));
    return row;
  }));
  section.querySelector('[data-queue-empty]').hidden = definitions.length > 0;
  section.hidden = false;
}

async function load() {
  status('Loading the definitions…');
  const answer = await call('GET', '/jdl', { accept: 'application/json' });
  if (!answer.ok || !answer.body || !Array.isArray(answer.body.definitions)) {
    status(`The definitions could not be read: ${answer.message || 'unexpected answer'}.`);
    return;
  }
  showDefinitions(answer.body.definitions);
  if (document.querySelector('[data-queue]')) {
    const queue = await call('GET', '/jdl?state=submitted', { accept: 'application/json' });
    if (queue.ok && queue.body && Array.isArray(queue.body.definitions)) showQueue(queue.body.definitions);
    else status(`The approval queue could not be read: ${queue.message}.`);
  }
  const count = answer.body.definitions.length;
  status(`${count} definition${count === 1 ? '' : 's'}.`);
}

load();
