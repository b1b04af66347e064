// "Send to SAMP": a FITS image or a VOTable result sent to the desktop tools (TOPCAT,
// Aladin…) through the SAMP hub's Web Profile (http://localhost:21012/, which the
// pages' CSP connect-src allows).
//
// A click asks OPUS for a shared link of the result (POST …/share with the CSRF token):
// the tools fetch the URL without the user's session, and the link ends after
// SHARED_LINK_LIFETIME. The page then registers with the hub (the hub asks the user to
// allow it: once per page) and sends image.load.fits or table.load.votable with the
// link's url and the file's name to every subscribed client (notifyAll). The vendored
// sampjs is loaded only on the first click.

import { request } from './common.js';

const APP_NAME = 'OPUS';
let connection = null;

async function sampjs() {
  const module = await import('../vendor/sampjs/samp.js');
  return module.samp;
}

function say(button, text) {
  const line = button.closest('[data-samp]')?.querySelector('[data-samp-status]');
  if (line) line.textContent = text;
}

async function sharedLink(button) {
  const response = await request(button.dataset.sampShare, {
    method: 'POST',
    headers: { Accept: 'application/json' },
  });
  if (!response.ok) throw new Error(`OPUS refused a link for this result (HTTP ${response.status}).`);
  return response.json();
}

function register(samp) {
  if (connection) return Promise.resolve(connection);
  return new Promise((resolve, reject) => {
    samp.register(
      APP_NAME,
      (made) => {
        connection = made;
        made.declareMetadata([{ 'samp.name': APP_NAME, 'samp.description.text': 'Results of OPUS jobs' }]);
        resolve(made);
      },
      () => reject(new Error('No SAMP hub answered (or it refused OPUS): start TOPCAT or Aladin, then try again.')),
    );
  });
}

function notifyAll(samp, made, mtype, params) {
  return new Promise((resolve, reject) => {
    made.notifyAll([new samp.Message(mtype, params)], resolve, (error) => reject(new Error(String(error))));
  });
}

async function send(button) {
  button.disabled = true;
  try {
    say(button, 'Making a link of the result…');
    const link = await sharedLink(button);
    const samp = await sampjs();
    say(button, 'Connecting to the SAMP hub (allow OPUS in its dialog)…');
    const params = { url: link.url, name: button.dataset.sampName || link.name };
    try {
      await notifyAll(samp, await register(samp), button.dataset.sampMtype, params);
    } catch (first) {
      // A hub restarted since the page registered: register again, once.
      if (!connection) throw first;
      connection = null;
      await notifyAll(samp, await register(samp), button.dataset.sampMtype, params);
    }
    say(button, `Sent to SAMP. The link works until ${link.expires}.`);
  } catch (failure) {
    say(button, failure.message || String(failure));
  } finally {
    button.disabled = false;
  }
}

document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-samp-mtype]');
  if (button) send(button);
});

window.addEventListener('pagehide', () => {
  if (connection) connection.unregister();
  connection = null;
});
