// The new-job form: the upload / URL / reuse toggle of each input file, the choice of
// one of the user's results as an input (its /store URL, which the server takes by
// reference), "Run once per file" (several files, or several results ticked, for one
// input: one job each), and the checks the browser can make before sending (the
// server checks everything again).

import { request } from './common.js';

const RESULTS = '/entities?kind=result&last=100';

const form = document.querySelector('[data-job-form]');
const eachBox = form && form.querySelector('[data-batch-each]');
const eachInput = form && form.querySelector('[data-batch-input]');
let results = [];

/** The input "Run once per file" applies to now, or '' when it is not ticked. */
function batchTarget() {
  return eachBox && eachBox.checked && eachInput ? eachInput.value : '';
}

function showSource(fieldset) {
  const chosen = fieldset.querySelector('input[type="radio"]:checked');
  const source = chosen ? chosen.value : 'file';
  for (const part of fieldset.querySelectorAll('[data-source]')) {
    const active = part.dataset.source === source;
    part.hidden = !active;
    for (const input of part.querySelectorAll('input')) {
      input.disabled = !active;
      input.required = active && input.type !== 'checkbox' && fieldset.hasAttribute('data-required');
    }
  }
}

function chooseSource(fieldset, source) {
  const radio = fieldset.querySelector(`input[type="radio"][value="${source}"]`);
  if (radio) radio.checked = true;
  showSource(fieldset);
}

function checkFiles(input) {
  const limit = Number(form.dataset.maxUpload || 0);
  const most = Number(form.dataset.batchMax || 0);
  const fieldset = input.closest('[data-file-input]');
  const batch = fieldset.dataset.fileInput === batchTarget();
  const files = [...input.files];
  const total = files.reduce((sum, file) => sum + file.size, 0);
  let problem = '';
  if (limit && files.some((file) => file.size > limit)) {
    problem = `A file is larger than the limit of ${limit} bytes.`;
  } else if (files.length > 1 && !batch && !fieldset.hasAttribute('data-several')) {
    problem = 'Choose one file, or tick “Run once per file”.';
  } else if (batch && most && files.length > most) {
    problem = `At most ${most} files at once.`;
  } else if (batch && limit && total > limit) {
    problem = `The files together are larger than the ${limit} bytes one form may send: choose fewer.`;
  }
  input.setCustomValidity(problem);
}

function checkResults(list) {
  const most = Number(form.dataset.batchMax || 0);
  const ticked = [...list.querySelectorAll('input[type="checkbox"]')];
  const count = ticked.filter((box) => box.checked).length;
  const problem = most && count > most ? `At most ${most} results at once.` : '';
  for (const box of ticked) box.setCustomValidity(problem);
}

function sizeText(count) {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let value = Number(count) || 0;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} ${units[0]}`;
}

/** The label of a result in a "my results" list: name · job · size · created. */
export function resultLabel(entity) {
  const created = String(entity.creationTime || '').replace('T', ' ').slice(0, 16);
  return [entity.name, `job ${entity.job}`, sizeText(entity.size), created].join(' · ');
}

async function myResults() {
  try {
    const response = await request(RESULTS, { headers: { Accept: 'application/json' } });
    if (!response.ok) return [];
    const body = await response.json();
    const found = Array.isArray(body.entities) ? body.entities : [];
    return found.filter((entity) => entity && entity.present && typeof entity.location === 'string');
  } catch (failure) {
    return [];
  }
}

// Each file input's "one of my results" select: choosing writes the result's URL in
// the input's URL field (and switches the input to "Give a URL").
function offerResult(picker) {
  const none = document.createElement('option');
  none.value = '';
  none.textContent = '(choose a result)';
  picker.append(none);
  for (const entity of results) {
    const option = document.createElement('option');
    option.value = entity.location;
    option.textContent = resultLabel(entity);
    option.dataset.entity = String(entity.id);
    picker.append(option);
  }
  picker.addEventListener('change', () => {
    if (!picker.value) return;
    const fieldset = picker.closest('[data-file-input]');
    chooseSource(fieldset, 'url');
    const input = document.getElementById(picker.dataset.pickFor);
    input.value = picker.value;
    input.dispatchEvent(new Event('input', { bubbles: true }));
  });
}

// The checkboxes of "Run once per file" over results: ticking one switches the input
// to "Choose among my results". Those ticked when the form was drawn again stay.
function offerResults(list, fieldset) {
  const ticked = new Set([...list.querySelectorAll('input')].map((box) => box.value));
  const name = fieldset.dataset.fileInput;
  const prefix = `field-${name}-result`;
  results.forEach((entity, index) => {
    if (ticked.has(entity.location)) return;
    const row = document.createElement('div');
    row.className = 'form-check';
    const box = document.createElement('input');
    box.className = 'form-check-input';
    box.type = 'checkbox';
    box.name = `${name}.result`;
    box.value = entity.location;
    box.id = `${prefix}-${index}`;
    box.dataset.entity = String(entity.id);
    const label = document.createElement('label');
    label.className = 'form-check-label text-break';
    label.htmlFor = box.id;
    label.textContent = resultLabel(entity);
    row.append(box, label);
    list.append(row);
  });
  list.addEventListener('change', () => {
    chooseSource(fieldset, 'results');
    checkResults(list);
  });
}

// Batch mode of each input: several files (or results) for the input the box names,
// one file (or one result, the select) for the others.
function showBatch() {
  const target = batchTarget();
  for (const fieldset of form.querySelectorAll('[data-file-input]')) {
    const batch = fieldset.dataset.fileInput === target;
    const several = batch || fieldset.hasAttribute('data-several');
    const file = fieldset.querySelector('input[type="file"]');
    if (file) {
      file.multiple = several;
      checkFiles(file);
    }
    const upload = fieldset.querySelector('label[for$="-source-file"]');
    if (upload) upload.textContent = several ? 'Upload files' : 'Upload a file';
    const note = fieldset.closest('[data-field]').querySelector('[data-batch-note]');
    if (note) note.hidden = batch;
    const choice = fieldset.querySelector('[data-results-choice]');
    if (choice) choice.hidden = !(batch && results.length);
    const single = fieldset.querySelector('[data-pick-result]');
    if (single) single.hidden = batch || !results.length;
    const chosen = fieldset.querySelector('input[type="radio"]:checked');
    if (!batch && chosen && chosen.value === 'results') chooseSource(fieldset, 'file');
  }
}

async function fillResults() {
  const pickers = [...form.querySelectorAll('select[data-pick-for]')];
  if (!pickers.length) return;
  results = await myResults();
  if (results.length) {
    for (const picker of pickers) offerResult(picker);
  }
  for (const fieldset of form.querySelectorAll('[data-file-input][data-batch]')) {
    const list = fieldset.querySelector('[data-result-list]');
    if (list) offerResults(list, fieldset);
  }
  showBatch();
}

if (form) {
  for (const fieldset of form.querySelectorAll('[data-file-input]')) {
    showSource(fieldset);
    fieldset.addEventListener('change', (event) => {
      if (event.target.type === 'radio') showSource(fieldset);
      if (event.target.type === 'file') checkFiles(event.target);
    });
  }
  if (eachBox) eachBox.addEventListener('change', showBatch);
  if (eachInput) eachInput.addEventListener('change', showBatch);
  showBatch();
  fillResults();
  // A field the server refused: focus it, so its message is read first.
  const refused = form.querySelector('.is-invalid');
  if (refused) refused.focus();
}
