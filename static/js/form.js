// The new-job form: the upload / URL / reuse toggle of each input file, and the checks
// the browser can make before sending (the server checks everything again).

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

if (form) {
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
