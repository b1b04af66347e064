// The new-job form: the upload / URL / reuse toggle of each input file, the choice of
// one of the user's results as an input (its /store URL, which the server takes by
// reference), and the checks the browser can make before sending (the server checks
// everything again).

import { request } from './common.js';

const RESULTS = '/entities?kind=result&last=50';

const form = document.querySelector('[data-job-form]');

function showSource(fieldset) {
  const chosen = fieldset.querySelector('input[type="radio"]:checked');
  const source = chosen ? chosen.value : 'file';
  for (const part of fieldset.querySelectorAll('[data-source]')) {
    const active = part.dataset.source === source;
    part.hidden = !active;
    const input = part.querySelector('input');
    if (input) {
      input.disabled = !active;
      input.required = active && fieldset.hasAttribute('data-required');
    }
  }
}

function checkSizes(input) {
  const limit = Number(form.dataset.maxUpload || 0);
  const tooLarge = limit && [...input.files].some((file) => file.size > limit);
  input.setCustomValidity(tooLarge ? `A file is larger than the limit of ${limit} bytes.` : '');
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
async function offerResults() {
  const pickers = [...form.querySelectorAll('select[data-pick-for]')];
  if (!pickers.length) return;
  const results = await myResults();
  if (!results.length) return;
  for (const picker of pickers) {
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
    picker.closest('[data-pick-result]').hidden = false;
    picker.addEventListener('change', () => {
      if (!picker.value) return;
      const fieldset = picker.closest('[data-file-input]');
      const radio = fieldset.querySelector('input[type="radio"][value="url"]');
      if (radio) radio.checked = true;
      showSource(fieldset);
      const input = document.getElementById(picker.dataset.pickFor);
      input.value = picker.value;
      input.dispatchEvent(new Event('input', { bubbles: true }));
    });
  }
}

if (form) {
  offerResults();
  for (const fieldset of form.querySelectorAll('[data-file-input]')) {
    showSource(fieldset);
    fieldset.addEventListener('change', (event) => {
      if (event.target.type === 'radio') showSource(fieldset);
      if (event.target.type === 'file') checkSizes(event.target);
    });
  }
  // A field the server refused: focus it, so its message is read first.
  const refused = form.querySelector('.is-invalid');
  if (refused) refused.focus();
}
