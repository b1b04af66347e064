// The sign-in form: posted by a script, so that a refusal shows on this page (the
// sign-in tree answers it as one line of text); without a script the form posts itself.

const form = document.querySelector('[data-login-form]');
const error = document.getElementById('login-error');
// The refusal of a sign-in with an identity provider, if the page came back with one.
const providerError = document.getElementById('oidc-error');

if (form) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    if (providerError) providerError.hidden = true;
    const body = new URLSearchParams(new FormData(form));
    let response;
    try {
      response = await fetch(form.action, {
        method: 'POST',
        body,
        credentials: 'same-origin',
        redirect: 'manual',
      });
    } catch (failure) {
      error.textContent = 'The server could not be reached: try again.';
      error.hidden = false;
      return;
    }
    const redirected = response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400);
    if (redirected || response.ok) {
      location.assign(form.elements.next.value || '/');
      return;
    }
    const text = (await response.text()).trim();
    const wait = response.headers.get('Retry-After');
    // A refusal after too many failures says when to try again: "… try again later (in 4 s)".
    error.textContent = (text || `Sign-in refused (HTTP ${response.status}).`) +
      (wait ? ` (in ${wait} s)` : '');
    error.hidden = false;
    form.elements.secret.value = '';
    form.elements.secret.focus();
  });
}
