// /admin/jdl/NAME: the job definition editor. The form (jdl_form.js), the script's
// CodeMirror (shell) and the YAML source's CodeMirror are one definition: an edit of the
// form or the script writes the YAML at once; an edit of the YAML fills the form when
// the text parses (a syntax error is shown, the form left as it was). The YAML text is
// what is saved, validated, tried and submitted, through the /jdl API.
//
// CodeMirror writes its styles in <style> elements: the page's CSP allows them by the
// nonce of this answer, given to every editor (EditorView.cspNonce). Everything the
// server or the user supplies goes into the page as text.

import { status } from './common.js';
import { FORMATS, call, draftText, jdlPath, link, problemsOf } from './jdl_api.js';
import { DefinitionForm, mark, unmark } from './jdl_form.js';
import { VersionHistory } from './jdl_versions.js';
import { YamlProblem, lineOf, parseDefinition, writeDefinition } from './jdl_yaml.js';
import {
  EditorState, EditorView, StreamLanguage, basicSetup, lintGutter, setDiagnostics, shell, yaml,
} from '../vendor/codemirror/codemirror.js';

const root = document.querySelector('[data-jdl-editor]');
const NAME = root.dataset.name;
const IS_ADMIN = root.dataset.admin === '1';
const YAML_TYPE = FORMATS.yaml.type;
// How long the YAML text rests before it fills the form (ms): not at every key.
const PARSE_DELAY = 250;

let applying = false; // an editor's text is being set by the page, not typed
let parseTimer = null;
let loadedText = null; // the text as the server has it (the draft's, else the active one's)
let hasDraft = false;
let busy = false;
let active = false; // whether the type has an approved revision in use

const form = new DefinitionForm(root.querySelector('[data-jdl-form]'), formChanged);
const history = new VersionHistory(root, NAME, IS_ADMIN, (message) => load(message));

function editor(parent, language, label, describedBy, onChange) {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: '',
      extensions: [
        basicSetup,
        language,
        EditorView.lineWrapping,
        EditorView.cspNonce.of(root.dataset.styleNonce || ''),
        // tabindex: said outright, so that checkers see the scroller's focusable content.
        EditorView.contentAttributes.of({ 'aria-label': label, 'aria-describedby': describedBy, tabindex: '0' }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && !applying) onChange();
        }),
      ],
    }),
  });
}

const scriptView = editor(
  root.querySelector('[data-script-editor]'), StreamLanguage.define(shell), 'Script (bash)',
  'jdl-script-help', formChanged,
);
scriptView.contentDOM.id = 'jdl-script-input';
const yamlView = editor(
  root.querySelector('[data-yaml-editor]'), [yaml(), lintGutter()], 'YAML source', 'jdl-yaml-help',
  yamlTyped,
);
yamlView.contentDOM.id = 'jdl-yaml-input';

function setText(view, text) {
  if (view.state.doc.toString() === text) return;
  applying = true;
  try {
    view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  } finally {
    applying = false;
  }
}

function yamlText() {
  return yamlView.state.doc.toString();
}

/** The form or the script changed: the YAML follows. */
function formChanged() {
  const data = form.read(scriptView.state.doc.toString());
  form.base = data;
  setText(yamlView, writeDefinition(data));
  showYamlError(null);
}

function yamlTyped() {
  clearTimeout(parseTimer);
  parseTimer = setTimeout(yamlChanged, PARSE_DELAY);
}

/** The YAML changed: the form follows when it parses. */
function yamlChanged() {
  clearTimeout(parseTimer);
  parseTimer = null;
  let data;
  try {
    data = parseDefinition(yamlText());
  } catch (error) {
    if (!(error instanceof YamlProblem)) throw error;
    showYamlError(error);
    return false;
  }
  showYamlError(null);
  form.fill(data);
  setText(scriptView, typeof data.script === 'string' ? data.script : '');
  return true;
}

let yamlBroken = false;

function showYamlError(problem) {
  if (!problem && !yamlBroken) return; // keep a validation's diagnostics
  yamlBroken = Boolean(problem);
  const line = root.querySelector('[data-yaml-error]');
  line.hidden = !problem;
  line.textContent = problem
    ? `The YAML does not parse${problem.line ? ` (line ${problem.line})` : ''}: ${problem.message}. The form shows the last text that did.`
    : '';
  const diagnostics = problem ? [diagnostic(yamlView.state, problem.line, problem.message)] : [];
  yamlView.dispatch(setDiagnostics(yamlView.state, diagnostics));
}

function diagnostic(state, number, message) {
  const line = state.doc.line(Math.min(Math.max(number || 1, 1), state.doc.lines));
  return { from: line.from, to: line.to, severity: 'error', message };
}

/** A YAML text in the editors (the form follows at once). */
function showDefinition(text) {
  setText(yamlView, text);
  yamlChanged();
}

// --- problems ------------------------------------------------------------------------

function clearProblems() {
  for (const marked of root.querySelectorAll('[aria-invalid="true"]')) unmark(marked);
  root.querySelector('[data-script-editor]').classList.remove('is-invalid');
  const box = root.querySelector('[data-problems]');
  box.hidden = true;
  box.querySelector('[data-problem-list]').replaceChildren();
  yamlView.dispatch(setDiagnostics(yamlView.state, []));
}

/** Each problem at its field (aria-invalid and its message), in the list above the
 * form, and at its line of the YAML. */
function showProblems(problems, title) {
  clearProblems();
  if (!problems.length) return;
  const box = root.querySelector('[data-problems]');
  box.querySelector('[data-problems-title]').textContent = title;
  const text = yamlText();
  const diagnostics = [];
  const items = problems.map((problem) => {
    const item = document.createElement('li');
    const control = controlOf(problem.field);
    if (control) mark(control, problem.message);
    const where = problem.field || 'the definition';
    if (control) {
      const jump = link(`#${control.id}`, where);
      jump.className = 'alert-link';
      jump.addEventListener('click', (event) => {
        event.preventDefault();
        control.focus();
      });
      item.append(jump, `: ${problem.message}`);
    } else item.textContent = `${where}: ${problem.message}`;
    const line = problem.line || lineOf(text, problem.field) || 1;
    diagnostics.push(diagnostic(yamlView.state, line, problem.message));
    return item;
  });
  box.querySelector('[data-problem-list]').replaceChildren(...items);
  box.hidden = false;
  yamlView.dispatch(setDiagnostics(yamlView.state, diagnostics));
}

function controlOf(field) {
  const control = form.controlFor(field);
  if (control && control.matches('[data-script-editor]')) {
    control.classList.add('is-invalid');
    return scriptView.contentDOM;
  }
  return control;
}

// --- the API -------------------------------------------------------------------------

async function fetchDefinition(path) {
  const answer = await call('GET', path, { accept: YAML_TYPE, raw: true });
  if (answer.ok) return answer.body;
  if (answer.status === 404) return null;
  throw new Error(answer.message);
}

/** Show the draft, else the active definition, else a new one (what GET /jdl says
 * exists is asked for: no request that must fail); ``message``: what to say then. */
async function load(message = '') {
  const entry = await showState();
  let text = null;
  let source = 'new';
  try {
    if (entry && entry.draft) {
      source = 'draft';
      text = await fetchDefinition(jdlPath(NAME, '/draft?format=yaml'));
    } else if (entry && entry.state === 'active') {
      source = 'active';
      text = await fetchDefinition(jdlPath(NAME, '?format=yaml'));
    }
  } catch (error) {
    status(`The definition could not be read: ${error.message}.`);
  }
  if (text === null) {
    source = 'new';
    text = writeDefinition({ name: NAME, version: '1', script: '' });
  }
  loadedText = source === 'new' ? null : text;
  hasDraft = source === 'draft';
  showDefinition(text);
  const said = {
    draft: 'The draft is shown.',
    active: 'The active definition is shown: saving it makes a draft.',
    new: 'A new definition: save it to make its draft.',
  };
  status(message || said[source]);
  await showVersions(entry);
}

/** The version history, when the type has versions (a new one has none). */
async function showVersions(entry) {
  const numbered = Boolean(entry && (entry.state !== 'new' || entry.revision !== null));
  await history.refresh(numbered, hasDraft);
}

/** The definition's entry of GET /jdl (null if none), written in the state line. */
async function showState() {
  const answer = await call('GET', '/jdl', { accept: 'application/json' });
  const line = root.querySelector('[data-state]');
  const entries = answer.ok && answer.body && Array.isArray(answer.body.definitions) ? answer.body.definitions : [];
  const entry = entries.find((found) => found.name === NAME) || null;
  if (!answer.ok) line.textContent = `The state of ${NAME} could not be read: ${answer.message}.`;
  else if (!entry) line.textContent = 'Not yet saved.';
  else {
    const parts = [`State: ${entry.state}`];
    if (entry.revision !== null && entry.revision !== undefined) parts.push(`revision ${entry.revision} (version ${entry.version})`);
    if (entry.draft) parts.push(`draft ${draftText(entry.draft)}`);
    line.textContent = `${parts.join('; ')}.`;
  }
  active = Boolean(entry && entry.state === 'active');
  hasDraft = Boolean(entry && entry.draft);
  return entry;
}

/** Save the YAML text as the draft; true when the server took it. */
async function save() {
  if (parseTimer) yamlChanged();
  const text = yamlText();
  const answer = await call('PUT', jdlPath(NAME, '/draft'), { body: text, type: YAML_TYPE });
  const problems = problemsOf(answer);
  if (!answer.ok) {
    showProblems(problems, 'The draft was not saved:');
    status(`The draft was not saved: ${answer.message}.`);
    return false;
  }
  loadedText = text;
  hasDraft = true;
  if (problems.length) showProblems(problems, 'The draft was saved; it has problems:');
  else clearProblems();
  status(problems.length ? `Draft saved, with ${problems.length} problem(s).` : 'Draft saved.');
  await showVersions(await showState());
  return true;
}

/** Save the text unless the server has it already (as a draft, or, when ``needDraft``
 * is false, as the active definition); true when the server has it. */
async function saveIfChanged(needDraft = true) {
  if (yamlText() === loadedText && (hasDraft || !needDraft)) return true;
  return save();
}

async function validate() {
  if (parseTimer) yamlChanged();
  const answer = await call('POST', jdlPath(NAME, '/draft/validate'), { body: yamlText(), type: YAML_TYPE });
  if (!answer.ok) {
    showProblems(problemsOf(answer), 'The definition could not be validated:');
    status(`Not validated: ${answer.message}.`);
    return;
  }
  const problems = problemsOf(answer);
  if (answer.body.valid && !problems.length) {
    clearProblems();
    status('The definition is valid.');
  } else {
    showProblems(problems, 'The definition has problems:');
    status(`The definition has ${problems.length} problem(s): see the fields marked.`);
  }
}

async function tryIt() {
  if (!(await saveIfChanged())) return;
  const result = root.querySelector('[data-try-result]');
  result.hidden = true;
  const answer = await call('POST', jdlPath(NAME, '/draft/try'), {
    body: '', type: 'application/x-www-form-urlencoded',
  });
  if (!answer.ok) {
    showProblems(problemsOf(answer), 'The draft could not be tried:');
    status(`Not tried: ${answer.message}.`);
    return;
  }
  const job = answer.body;
  const open = link(job.page, 'open its page');
  open.className = 'alert-link';
  result.replaceChildren(`Job ${job.id} of the draft is running: `, open, '.');
  result.hidden = false;
  status(`Job ${job.id} of the draft is running.`);
}

async function submit() {
  if (!(await saveIfChanged())) return;
  const answer = await call('POST', jdlPath(NAME, '/draft/submit'));
  if (!answer.ok) {
    showProblems(problemsOf(answer), 'The draft was not submitted:');
    status(`Not submitted: ${answer.message}.`);
    return;
  }
  status('The draft is submitted for approval.');
  showState();
}

async function approve() {
  if (!(await saveIfChanged())) return;
  const answer = await call('POST', jdlPath(NAME, '/draft/approve'));
  if (!answer.ok) {
    showProblems(problemsOf(answer), 'The draft was not approved:');
    status(`Not approved: ${answer.message}.`);
    return;
  }
  status(`Approved: ${NAME} is now revision ${answer.body.revision}.`);
  hasDraft = false;
  await showVersions(await showState());
}

async function importFile(input) {
  const file = input.files && input.files[0];
  if (!file) return;
  const body = new FormData();
  body.append('definition', file, file.name);
  const answer = await call('PUT', jdlPath(NAME, '/draft'), { body });
  input.value = '';
  if (!answer.ok) {
    showProblems(problemsOf(answer), `${file.name} was not imported:`);
    status(`${file.name} was not imported: ${answer.message}.`);
    return;
  }
  const text = await fetchDefinition(jdlPath(NAME, '/draft?format=yaml')).catch(() => null);
  if (text === null) {
    status(`${file.name} was imported, but the draft could not be read back.`);
    return;
  }
  loadedText = text;
  hasDraft = true;
  showDefinition(text);
  const problems = problemsOf(answer);
  if (problems.length) showProblems(problems, `${file.name} was imported as the draft; it has problems:`);
  else clearProblems();
  status(`${file.name} is imported as the draft.`);
  await showVersions(await showState());
}

async function exportAs(format) {
  if (!(await saveIfChanged(false))) return;
  const { type, extension } = FORMATS[format];
  // The draft, or the active definition when there is no draft (nothing was edited).
  const path = hasDraft || !active ? `/draft?format=${format}` : `?format=${format}`;
  const answer = await call('GET', jdlPath(NAME, path), { accept: type, raw: true });
  if (!answer.ok) {
    status(`Not exported: ${answer.message}.`);
    return;
  }
  const url = URL.createObjectURL(new Blob([answer.body], { type }));
  const anchor = document.createElement('a');
  anchor.href = url;
  anchor.download = `${NAME}.${extension}`;
  anchor.hidden = true;
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  status(`${NAME}.${extension} is downloaded.`);
}

// --- the buttons ---------------------------------------------------------------------

const ACTIONS = { save, validate, try: tryIt, submit, approve };

/** Run one action at a time (a second click while one runs is ignored). */
async function exclusive(work) {
  if (busy) return;
  busy = true;
  root.setAttribute('aria-busy', 'true');
  try {
    await work();
  } catch (error) {
    status(`Something went wrong: ${error.message}.`);
    throw error;
  } finally {
    busy = false;
    root.removeAttribute('aria-busy');
  }
}

// YAML typed a moment ago fills the form before the form is edited (or the form's
// edit would write the YAML from what the form showed before).
root.querySelector('[data-jdl-form]').addEventListener('focusin', () => {
  if (parseTimer) yamlChanged();
});

root.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action], button[data-export]');
  if (!button) return;
  if (button.dataset.action) exclusive(ACTIONS[button.dataset.action]);
  else exclusive(() => exportAs(button.dataset.export));
});
root.querySelector('#jdl-import').addEventListener('change', (event) => {
  exclusive(() => importFile(event.target));
});

load();
