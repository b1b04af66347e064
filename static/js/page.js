// Every page: confirmations of destructive buttons, "select all" of job lists.

document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-confirm]');
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

document.addEventListener('change', (event) => {
  const all = event.target.closest('[data-select-all]');
  if (!all) return;
  const table = all.closest('table');
  for (const box of table.querySelectorAll('tbody input[type="checkbox"][name="job"]')) {
    box.checked = all.checked;
  }
});
