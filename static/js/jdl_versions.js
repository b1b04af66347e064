// The version history of a definition in its editor: the approved revisions (GET
// /jdl/NAME/versions), the differences between two of them or a revision and the
// draft (GET /jdl/NAME/diff, a unified diff shown as text, its added and removed lines
// styled; the + and - stay written, so colour is never the only sign), and, for
// admins, restoring a revision as a new one.

import { status } from './common.js';
import { call, cell, jdlPath, when } from './jdl_api.js';

export class VersionHistory {
  /** ``root``: the editor's element; ``onRestored(message)``: called after a restore. */
  constructor(root, name, isAdmin, onRestored) {
    this.root = root;
    this.name = name;
    this.isAdmin = isAdmin;
    this.onRestored = onRestored;
    this.rows = root.querySelector('[data-version-rows]');
    this.rows.addEventListener('click', (event) => this.clicked(event));
  }

  /** Show the revisions (``numbered``: the type has some; ``withDraft``: a draft to
   * compare them with exists). */
  async refresh(numbered = true, withDraft = false) {
    let versions = [];
    if (numbered) {
      const answer = await call('GET', jdlPath(this.name, '/versions'), { accept: 'application/json' });
      if (answer.ok && answer.body && Array.isArray(answer.body.versions)) versions = answer.body.versions;
      else status(`The version history could not be read: ${answer.message}.`);
    }
    this.withDraft = withDraft;
    this.rows.replaceChildren(...versions.map((version, index) => this.row(version, versions[index + 1])));
    this.root.querySelector('[data-versions-empty]').hidden = versions.length > 0;
    return versions;
  }

  row(version, previous) {
    const row = document.createElement('tr');
    const revision = cell(`${version.revision}${version.current ? ' (current)' : ''}`, 'th');
    revision.scope = 'row';
    const actions = cell('');
    actions.className = 'jdl-version-actions';
    if (previous) {
      actions.append(button(`Compare with revision ${previous.revision}`, ` (revision ${version.revision})`, {
        diffFrom: previous.revision, diffTo: version.revision,
      }));
    }
    if (this.withDraft) {
      actions.append(button('Compare with the draft', ` (revision ${version.revision})`, {
        diffFrom: version.revision, diffTo: 'draft',
      }));
    }
    if (this.isAdmin && !version.current) {
      actions.append(button('Restore', ` revision ${version.revision}`, { restore: version.revision }));
    }
    row.append(revision, cell(version.version), cell(version.approved_by), cell(when(version.approved_at)), actions);
    return row;
  }

  clicked(event) {
    const target = event.target.closest('button');
    if (!target) return;
    if (target.dataset.diffFrom) this.diff(target.dataset.diffFrom, target.dataset.diffTo);
    else if (target.dataset.restore) this.restore(target.dataset.restore);
  }

  async diff(from, to) {
    const query = new URLSearchParams({ from, to });
    const answer = await call('GET', jdlPath(this.name, `/diff?${query}`), { accept: 'text/plain' });
    const box = this.root.querySelector('[data-diff]');
    if (!answer.ok) {
      status(`The differences could not be read: ${answer.message}.`);
      return;
    }
    const target = to === 'draft' ? 'the draft' : `revision ${to}`;
    box.querySelector('[data-diff-title]').textContent = `Changes from revision ${from} to ${target}`;
    const text = typeof answer.body === 'string' ? answer.body : '';
    box.querySelector('[data-diff-text]').replaceChildren(...diffLines(text));
    box.hidden = false;
    status(text.trim() ? `The changes from revision ${from} to ${target}.` : `Revision ${from} and ${target} are the same.`);
    box.querySelector('[data-diff-text]').focus();
  }

  async restore(revision) {
    if (!window.confirm(`Restore revision ${revision}? It becomes a new revision of ${this.name}.`)) return;
    const answer = await call('POST', jdlPath(this.name, `/versions/${encodeURIComponent(revision)}/restore`));
    if (!answer.ok) {
      status(`Revision ${revision} was not restored: ${answer.message}.`);
      return;
    }
    this.onRestored(`Revision ${revision} is the active definition again.`);
  }
}

function button(text, hidden, data) {
  const made = document.createElement('button');
  made.type = 'button';
  made.className = 'btn btn-outline-secondary btn-sm';
  made.textContent = text;
  const more = document.createElement('span');
  more.className = 'visually-hidden';
  more.textContent = hidden;
  made.append(more);
  Object.assign(made.dataset, data);
  return made;
}

/** The lines of a unified diff as text nodes and styled spans. */
export function diffLines(text) {
  const nodes = [];
  for (const line of text.split('\n')) {
    const span = document.createElement('span');
    if (line.startsWith('+++') || line.startsWith('---')) span.className = 'jdl-diff-file';
    else if (line.startsWith('+')) span.className = 'jdl-diff-add';
    else if (line.startsWith('-')) span.className = 'jdl-diff-del';
    else if (line.startsWith('@@')) span.className = 'jdl-diff-hunk';
    span.textContent = line;
    nodes.push(span, document.createTextNode('\n'));
  }
  if (nodes.length) nodes.pop();
  return nodes;
}
