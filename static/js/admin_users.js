// The admins' users page: finds, creates and changes users through the SCIM API
// (/scim/v2/Users), with the session cookie and its CSRF token (common.js's request),
// as any SCIM client would: the server's rules of users are SCIM's, in one place.
// Everything a user or the server supplies goes into the page as text (textContent,
// an input's value). A new API token is shown once, in the token panel, and dropped
// from the page when the panel is hidden.

import { request, status } from './common.js';

const root = document.getElementById('admin-users');
const SCIM_TYPE = 'application/scim+json';
const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';
const OPUS_USER = 'urn:opus:params:scim:schemas:extension:2.0:User';
const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
// Users a list request asks for at a time (the SCIM tree's most).
const PAGE = 1000;

/** A refusal of the SCIM API: its status and its one-line reason. */
class ScimRefusal extends Error {
  constructor(code, detail, scimType) {
    super(detail);
    this.code = code;
    this.scimType = scimType || '';
  }
}

function whenText(iso) {
  return iso ? `${iso.slice(0, 19).replace('T', ' ')} UTC` : '';
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

if (root) {
  const base = root.dataset.scim;
  const self = root.dataset.self;
  const rows = document.getElementById('user-rows');
  const rowTemplate = document.getElementById('user-row-template');
  const extraTemplate = document.getElementById('extra-role-template');
  const noUsers = document.getElementById('no-users');
  const failure = document.getElementById('admin-error');
  const searchForm = document.getElementById('user-search');
  const searchInput = document.getElementById('user-search-name');
  const createForm = document.getElementById('create-user');
  const panel = document.getElementById('manage-user');
  const rolesForm = document.getElementById('manage-roles');
  const passwordForm = document.getElementById('manage-password');
  const activeButton = document.getElementById('manage-active');
  const tokenButton = document.getElementById('manage-token');
  const deleteButton = document.getElementById('manage-delete');
  const tokenPanel = document.getElementById('token-panel');
  const tokenValue = document.getElementById('token-value');
  const copyStatus = document.getElementById('token-copy-status');
  // The user the manage panel shows (a SCIM User), and the search the list shows.
  let managed = null;
  let search = searchInput.value.trim();
  // Whether the SCIM tree filters by "contains" itself (learned at the first search;
  // else the whole list is read and filtered here).
  let serverContains = true;

  async function scim(path, method = 'GET', body = undefined) {
    const headers = { Accept: SCIM_TYPE };
    if (body !== undefined) headers['Content-Type'] = SCIM_TYPE;
    const response = await request(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      // The session is over (a new token or password of one's own ends it).
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      throw new ScimRefusal(401, 'your session has ended: sign in again');
    }
    if (response.status === 204) return null;
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (!response.ok) {
      const detail = (answer && answer.detail) || `the server answered ${response.status}`;
      throw new ScimRefusal(response.status, detail, answer && answer.scimType);
    }
    return answer;
  }

  function userPath(name) {
    return `/Users/${encodeURIComponent(name)}`;
  }

  function patch(name, operations) {
    return scim(userPath(name), 'PATCH', { schemas: [PATCH_OP], Operations: operations });
  }

  async function listAll(filter) {
    const users = [];
    for (let start = 1; ; start += PAGE) {
      const query = new URLSearchParams({ startIndex: String(start), count: String(PAGE) });
      if (filter) query.set('filter', filter);
      const page = await scim(`/Users?${query}`);
      const found = page.Resources || [];
      users.push(...found);
      if (!found.length || users.length >= page.totalResults) return users;
    }
  }

  async function findUsers(text) {
    if (!text) return listAll('');
    if (serverContains) {
      try {
        return await listAll(`userName co ${JSON.stringify(text)}`);
      } catch (refusal) {
        if (!(refusal instanceof ScimRefusal) || refusal.scimType !== 'invalidFilter') throw refusal;
        serverContains = false;
      }
    }
    const wanted = text.toLowerCase();
    return (await listAll('')).filter((user) => user.userName.toLowerCase().includes(wanted));
  }

  function roleNames(user) {
    return (user.roles || []).map((role) => role.value);
  }

  function rowOf(user) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.user = user.userName;
    row.querySelector('[data-cell="name"]').textContent = user.userName;
    row.querySelector('[data-cell="status"]').textContent = user.active ? 'active' : 'disabled';
    row.querySelector('[data-cell="roles"]').textContent = roleNames(user).join(', ') || 'none';
    const created = row.querySelector('time');
    created.dateTime = (user.meta && user.meta.created) || '';
    created.textContent = whenText(created.dateTime);
    const button = row.querySelector('[data-manage]');
    button.dataset.manage = user.userName;
    button.querySelector('.visually-hidden').textContent = ` ${user.userName}`;
    return row;
  }

  async function refresh() {
    const users = await findUsers(search);
    rows.replaceChildren(...users.map(rowOf));
    noUsers.hidden = users.length > 0;
    status(search ? `${plural(users.length, 'user')} whose name contains “${search}”` : plural(users.length, 'user'));
  }

  function showError(text) {
    failure.textContent = text;
    failure.hidden = !text;
  }

  /** Run an action; a refusal is shown on the page, in its one-line reason. */
  async function act(action) {
    showError('');
    try {
      await action();
    } catch (refusal) {
      if (refusal instanceof ScimRefusal) {
        showError(refusal.message);
      } else {
        showError('the request failed: is the server reachable?');
        throw refusal;
      }
    }
  }

  function showToken(name, token) {
    tokenPanel.querySelector('[data-token-user]').textContent = name;
    tokenPanel.querySelector('#token-title').textContent = `New API token of ${name}`;
    tokenValue.value = token;
    copyStatus.textContent = '';
    tokenPanel.hidden = false;
    tokenPanel.querySelector('#token-title').focus();
  }

  function hideToken() {
    tokenValue.value = '';
    copyStatus.textContent = '';
    tokenPanel.hidden = true;
  }

  async function copyToken() {
    try {
      await navigator.clipboard.writeText(tokenValue.value);
      copyStatus.textContent = 'Copied to the clipboard.';
    } catch {
      tokenValue.select();
      copyStatus.textContent = 'Selected: copy it with Ctrl+C (⌘C on a Mac).';
    }
  }

  function checkedRoles(form) {
    return [...form.querySelectorAll('input[name="role"]:checked')].map((box) => box.value);
  }

  function showManaged(user) {
    managed = user;
    const name = user.userName;
    panel.querySelector('#manage-title').textContent = `Manage ${name}`;
    const created = whenText(user.meta && user.meta.created);
    panel.querySelector('[data-manage-status]').textContent =
      `${name} is ${user.active ? 'active' : 'disabled'}${created ? `; a user since ${created}` : ''}.`;
    const roles = new Set(roleNames(user));
    for (const box of rolesForm.querySelectorAll('input[name="role"]')) {
      box.checked = roles.has(box.value);
      roles.delete(box.value);
    }
    // Roles the page offers no checkbox for (a job type since removed): kept, shown.
    const extra = rolesForm.querySelector('[data-extra-roles]');
    extra.replaceChildren(
      ...[...roles].map((role, index) => {
        const choice = extraTemplate.content.firstElementChild.cloneNode(true);
        const box = choice.querySelector('input');
        box.value = role;
        box.id = `manage-extra-role-${index}`;
        const label = choice.querySelector('label');
        label.htmlFor = box.id;
        label.textContent = role;
        return choice;
      }),
    );
    rolesForm.querySelector('legend').textContent = `Roles of ${name}`;
    activeButton.textContent = user.active ? `Disable ${name}` : `Enable ${name}`;
    tokenButton.textContent = `New API token for ${name}`;
    passwordForm.querySelector('label').textContent = `New password for ${name}`;
    passwordForm.querySelector('input[name="username"]').value = name;
    deleteButton.textContent = `Delete ${name}`;
    panel.hidden = false;
  }

  async function manage(name) {
    showManaged(await scim(userPath(name)));
    panel.querySelector('#manage-title').focus();
  }

  /** Ask before an admin changes their own account in a way that locks them out. */
  function confirmSelf(what) {
    return managed.userName !== self || window.confirm(`This is your own account: ${what}`);
  }

  rows.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-manage]');
    if (button) act(() => manage(button.dataset.manage));
  });

  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    search = searchInput.value.trim();
    const url = new URL(location.href);
    if (search) url.searchParams.set('q', search);
    else url.searchParams.delete('q');
    history.replaceState(null, '', url);
    act(refresh);
  });

  createForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = createForm.elements.userName.value.trim();
    const password = createForm.elements.password.value;
    const user = {
      schemas: [CORE_USER],
      userName: name,
      roles: checkedRoles(createForm).map((value) => ({ value })),
    };
    if (password) user.password = password;
    act(async () => {
      const made = await scim('/Users', 'POST', user);
      createForm.reset();
      showToken(made.userName, made[OPUS_USER].token);
      await refresh();
      status(`User ${made.userName} created.`);
    });
  });

  rolesForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const roles = checkedRoles(rolesForm);
    if (roleNames(managed).includes('admin') && !roles.includes('admin') &&
        !confirmSelf('without the admin role, you will no longer see these pages.')) return;
    act(async () => {
      const name = managed.userName;
      showManaged(await patch(name, [
        { op: 'replace', path: 'roles', value: roles.map((value) => ({ value })) },
      ]));
      await refresh();
      status(`Roles of ${name} saved.`);
    });
  });

  activeButton.addEventListener('click', () => {
    const active = !managed.active;
    if (!active && !confirmSelf('disabled, you will be signed out and refused.')) return;
    act(async () => {
      const name = managed.userName;
      showManaged(await patch(name, [{ op: 'replace', path: 'active', value: active }]));
      await refresh();
      status(`${name} is ${active ? 'enabled' : 'disabled'}.`);
    });
  });

  tokenButton.addEventListener('click', () => {
    const name = managed.userName;
    if (!window.confirm(`Replace the API token of ${name}? Scripts using the old one will stop working, and ${name}'s browser sessions end.`)) return;
    act(async () => {
      const answer = await patch(name, [
        { op: 'replace', path: `${OPUS_USER}:token`, value: 'new' },
      ]);
      showManaged(answer);
      showToken(name, answer[OPUS_USER].token);
      status(`${name} has a new API token.`);
    });
  });

  passwordForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const input = passwordForm.elements.password;
    const password = input.value;
    act(async () => {
      const name = managed.userName;
      showManaged(await patch(name, [{ op: 'replace', path: 'password', value: password }]));
      input.value = '';
      status(`The password of ${name} is set; ${name}'s browser sessions have ended.`);
    });
  });

  deleteButton.addEventListener('click', () => {
    const name = managed.userName;
    if (!window.confirm(`Delete the user ${name}? Their jobs stay, for the admins.`)) return;
    if (!confirmSelf('deleted, you will be signed out for good.')) return;
    act(async () => {
      await scim(userPath(name), 'DELETE');
      managed = null;
      panel.hidden = true;
      await refresh();
      status(`User ${name} deleted.`);
    });
  });

  document.getElementById('manage-close').addEventListener('click', () => {
    managed = null;
    panel.hidden = true;
  });
  document.getElementById('token-copy').addEventListener('click', copyToken);
  document.getElementById('token-done').addEventListener('click', hideToken);
}
