// The editor's form: the description's fields, the source (a git repository and its
// ref, fixed or a parameter's), and the rows of parameters, used and generated entities
// (added, removed, moved), read into a definition object and filled from one, and the
// problems of a validation shown at their fields.
//
// Reading starts from the object the form was filled from, so keys the form has no
// control for (a typo such as "colour", which the server will name) stay in the YAML
// until the user removes them there. Every value goes in as text (value, textContent).

import { ROW_KEYS, ROW_KINDS, isMapping, isTrue, parsePath } from './jdl_yaml.js';

const FILE_URL = 'file://$ID';
// The description's fields that are numbers of seconds (written as numbers when they are).
const SECONDS = new Set(['execution_duration', 'quote']);
let serial = 0;

function shown(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function seconds(text) {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : text;
}

export class DefinitionForm {
  /** ``form``: the <form data-jdl-form>; ``onChange``: called after each edit. */
  constructor(form, onChange) {
    this.form = form;
    this.onChange = onChange;
    this.sources = new WeakMap(); // row → the object it was filled from
    this.base = {};
    form.addEventListener('submit', (event) => event.preventDefault());
    form.addEventListener('input', (event) => this.edited(event.target));
    form.addEventListener('change', (event) => this.edited(event.target));
    form.addEventListener('click', (event) => this.clicked(event));
  }

  list(kind) {
    return this.form.querySelector(`[data-rows="${kind}"] [data-row-list]`);
  }

  rows(kind) {
    return [...this.list(kind).children];
  }

  control(key) {
    return this.form.querySelector(`[data-path="${key}"]`);
  }

  sourceControl(key) {
    return this.form.querySelector(`[data-source="${key}"]`);
  }

  /** Show a definition's ``source`` ({git, ref} with ref a text or {parameter}). */
  fillSource(value) {
    const source = isMapping(value) ? value : {};
    const byParameter = isMapping(source.ref);
    this.sourceControl('git').value = shown(source.git);
    this.sourceControl('kind').value = byParameter ? 'parameter' : 'fixed';
    this.sourceControl('ref').value = shown(byParameter ? source.ref.parameter : source.ref);
  }

  /** The ``source`` the form holds (undefined: none), keeping what it has no control
   * for (an unknown key, a source that is not a mapping while the fields are empty). */
  readSource(base) {
    const git = this.sourceControl('git').value;
    const ref = this.sourceControl('ref').value;
    if (git.trim() === '' && ref.trim() === '') return isMapping(base) ? undefined : base;
    const source = isMapping(base) ? { ...base } : {};
    if (git !== '') source.git = git;
    else delete source.git;
    if (this.sourceControl('kind').value === 'parameter') {
      source.ref = { ...(isMapping(source.ref) ? source.ref : {}), parameter: ref };
    } else if (ref !== '') source.ref = ref;
    else delete source.ref;
    return source;
  }

  edited(target) {
    if (target.closest('[data-script-editor]')) return; // CodeMirror reports its own
    if (target.getAttribute('aria-invalid') === 'true') unmark(target);
    const row = target.closest('[data-row]');
    if (row && target.dataset.field === 'source') showTemplate(row);
    if (row && target.dataset.field === 'name') this.renumber(row.closest('[data-rows]').dataset.rows);
    this.onChange();
  }

  clicked(event) {
    const button = event.target.closest('button');
    if (!button || !this.form.contains(button)) return;
    if (button.dataset.add) {
      // A new input file is an upload, the most common kind.
      const row = this.addRow(button.dataset.add, button.dataset.add === 'used' ? { url: FILE_URL } : {});
      row.querySelector('[data-field="name"]').focus();
      this.onChange();
      return;
    }
    const row = button.closest('[data-row]');
    if (!row) return;
    const kind = row.closest('[data-rows]').dataset.rows;
    if (button.hasAttribute('data-remove')) {
      const rows = this.rows(kind);
      const index = rows.indexOf(row);
      row.remove();
      this.renumber(kind);
      // Focus goes to the row that took its place, or to the "Add" button.
      const next = this.rows(kind)[Math.min(index, rows.length - 2)];
      const target = next ? next.querySelector('[data-remove]') : this.form.querySelector(`[data-add="${kind}"]`);
      target.focus();
      this.onChange();
    } else if (button.dataset.move) {
      const step = Number(button.dataset.move);
      const sibling = step < 0 ? row.previousElementSibling : row.nextElementSibling;
      if (!sibling) return;
      if (step < 0) sibling.before(row);
      else sibling.after(row);
      this.renumber(kind);
      button.focus(); // it moved with its row
      this.onChange();
    }
  }

  /** A new row of ``kind`` at the end, filled from ``source`` (an object of the YAML). */
  addRow(kind, source) {
    const template = this.form.ownerDocument.querySelector(`template[data-row-template="${kind}"]`);
    const row = template.content.firstElementChild.cloneNode(true);
    serial += 1;
    for (const control of row.querySelectorAll('[data-field]')) {
      control.id = `jdl-${kind}-${serial}-${control.dataset.field}`;
      const label = row.querySelector(`[data-label-for="${control.dataset.field}"]`);
      if (label) label.htmlFor = control.id;
    }
    this.sources.set(row, isMapping(source) ? source : {});
    fillRow(kind, row, isMapping(source) ? source : {});
    this.list(kind).append(row);
    this.renumber(kind);
    return row;
  }

  /** Number the rows of ``kind`` in their legends and their buttons' names. */
  renumber(kind) {
    const fieldset = this.form.querySelector(`[data-rows="${kind}"]`);
    const singular = fieldset.dataset.singular;
    const rows = this.rows(kind);
    fieldset.querySelector('[data-none]').hidden = rows.length > 0;
    rows.forEach((row, index) => {
      const name = row.querySelector('[data-field="name"]').value.trim();
      const title = `${singular[0].toUpperCase()}${singular.slice(1)} ${index + 1}`;
      row.querySelector('[data-row-title]').textContent = name ? `${title}: ${name}` : title;
      for (const label of row.querySelectorAll('[data-row-label]')) {
        label.textContent = ` ${singular} ${index + 1}`;
      }
    });
  }

  /** Show a definition object in the form. */
  fill(data) {
    this.base = isMapping(data) ? data : {};
    for (const control of this.form.querySelectorAll('[data-path]')) {
      if (control.matches('input, textarea')) control.value = shown(this.base[control.dataset.path]);
    }
    this.fillSource(this.base.source);
    for (const kind of ROW_KINDS) {
      this.list(kind).replaceChildren();
      const rows = Array.isArray(this.base[kind]) ? this.base[kind] : [];
      for (const source of rows) this.addRow(kind, source);
      this.renumber(kind);
    }
  }

  /** The definition object the form holds (``script``: the script editor's text). */
  read(script) {
    const data = { ...this.base };
    for (const control of this.form.querySelectorAll('input[data-path], textarea[data-path]')) {
      const key = control.dataset.path;
      const value = control.value;
      if (key === 'name') data.name = value;
      else if (value.trim() === '') delete data[key];
      else data[key] = SECONDS.has(key) ? seconds(value) : value;
    }
    const source = this.readSource(this.base.source);
    if (source === undefined) delete data.source;
    else data.source = source;
    for (const kind of ROW_KINDS) {
      const rows = this.rows(kind).map((row) => readRow(kind, row, this.sources.get(row) || {}));
      if (rows.length) data[kind] = rows;
      else delete data[kind];
    }
    if (script !== '' || typeof this.base.script === 'string') data.script = script;
    return data;
  }

  /** The control a problem's field path names (null: none, e.g. an unknown key). */
  controlFor(path) {
    const parts = parsePath(path);
    if (!parts.length) return null;
    if (parts[0] === 'source') return this.sourceControl(parts[1] === 'ref' ? 'ref' : 'git');
    if (!ROW_KINDS.includes(parts[0])) return this.control(String(parts[0]));
    const rows = this.rows(parts[0]);
    let row = null;
    if (typeof parts[1] === 'number') row = rows[parts[1]] || null;
    else if (parts[1] !== undefined) {
      row = rows.find((r) => r.querySelector('[data-field="name"]').value.trim() === parts[1]) || null;
    }
    if (!row) return parts.length === 1 ? this.form.querySelector(`[data-add="${parts[0]}"]`) : null;
    let field = typeof parts[2] === 'string' ? parts[2] : 'name';
    if (field === 'url' && row.querySelector('[data-field="source"]').value !== 'id') field = 'source';
    return row.querySelector(`[data-field="${field}"]`) || row.querySelector('[data-field="name"]');
  }
}

function fillRow(kind, row, source) {
  for (const control of row.querySelectorAll('[data-field]')) {
    const key = control.dataset.field;
    if (control.type === 'checkbox') control.checked = isTrue(source[key]);
    else if (key === 'options') {
      control.value = Array.isArray(source.options) ? source.options.map(shown).join('\n') : shown(source.options);
    } else if (key === 'datatype') {
      selectValue(control, shown(source.datatype) || 'xs:string');
    } else if (key === 'source') {
      const url = shown(source.url);
      control.value = url === FILE_URL ? 'file' : url ? 'id' : 'url';
    } else control.value = shown(source[key]);
  }
  if (kind === 'used') showTemplate(row);
}

/** Choose ``value`` in a select, adding it when the form does not know it (an unknown
 * datatype stays as written, for the server to name). */
function selectValue(select, value) {
  if (![...select.options].some((option) => option.value === value)) {
    const option = select.ownerDocument.createElement('option');
    option.value = value;
    option.textContent = value;
    select.append(option);
  }
  select.value = value;
}

function showTemplate(row) {
  const part = row.querySelector('[data-template-part]');
  if (part) part.hidden = row.querySelector('[data-field="source"]').value !== 'id';
}

function readRow(kind, row, source) {
  const data = { ...source };
  const value = (key) => row.querySelector(`[data-field="${key}"]`);
  for (const key of ROW_KEYS[kind]) {
    const control = value(key);
    if (key === 'url' && kind === 'used') {
      const how = value('source').value;
      if (how === 'file') data.url = FILE_URL;
      else if (how === 'id' && control.value.trim()) data.url = control.value;
      else delete data.url;
      continue;
    }
    if (!control) continue;
    if (control.type === 'checkbox') {
      if (control.checked) data[key] = true;
      else delete data[key];
    } else if (key === 'options') {
      const options = control.value.split('\n').filter((line) => line.trim() !== '');
      if (options.length) data.options = options;
      else delete data.options;
    } else if (key === 'name' || key === 'datatype' || (kind === 'generated' && key === 'default')) {
      data[key] = control.value;
    } else if (control.value !== '') data[key] = control.value;
    else if (key === 'default' && source.default === '') data.default = ''; // an empty default, as written
    else delete data[key];
  }
  return data;
}

/** Mark a control as invalid, with the message read after its label. */
export function mark(control, message) {
  const known = control.ownerDocument.getElementById(`${control.id || 'jdl-field'}-problem`);
  if (known) {
    known.textContent += ` ${message}`;
    return;
  }
  control.classList.add('is-invalid');
  control.setAttribute('aria-invalid', 'true');
  const note = control.ownerDocument.createElement('div');
  note.className = 'invalid-feedback d-block';
  note.id = `${control.id || 'jdl-field'}-problem`;
  note.dataset.problemOf = control.id;
  note.textContent = message;
  const place = control.closest('.form-check') || control;
  place.after(note);
  const described = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
  control.setAttribute('aria-describedby', [...described, note.id].join(' '));
}

export function unmark(control) {
  control.classList.remove('is-invalid');
  control.removeAttribute('aria-invalid');
  const note = control.ownerDocument.getElementById(`${control.id || 'jdl-field'}-problem`);
  if (!note) return;
  const described = (control.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && id !== note.id);
  if (described.length) control.setAttribute('aria-describedby', described.join(' '));
  else control.removeAttribute('aria-describedby');
  note.remove();
}
