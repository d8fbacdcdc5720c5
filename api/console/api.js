// api.js - the console's only way to the relay: the public /v1 API with
// the operator's key as "Authorization: Bearer" (no cookies, so nothing
// for another site to ride on).  The key lives in sessionStorage: it goes
// with the tab.
const KEY = 'mailferry.console.key';

export const session = {
  key: sessionStorage.getItem(KEY) || '',
  scopes: [],
  name: '',
  id: null,
};

export function can(scope) {
  return session.scopes.includes('admin') || session.scopes.includes(scope);
}

export function saveKey(key) {
  session.key = key;
  sessionStorage.setItem(KEY, key);
}

export function forgetKey() {
  session.key = '';
  session.scopes = [];
  sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || 'HTTP ' + status);
    this.status = status;
    this.problem = problem || {};
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + session.key, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit', redirect: 'error',
    });
  } catch (e) {
    throw new ApiError(0, null);
  }
  let data = null;
  const ct = res.headers.get('Content-Type') || '';
  if (ct.includes('json')) data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// A sentence for a person about what went wrong, and whether a retry helps.
export function describe(err) {
  if (!(err instanceof ApiError)) return { text: 'Something went wrong in the console: ' + err.message, retry: false };
  switch (err.status) {
    case 0: return { text: 'The relay cannot be reached; retrying.', retry: true };
    case 503: return { text: 'The database is unavailable; retrying.', retry: true };
    case 429: return { text: 'The relay asks us to slow down; retrying.', retry: true };
    case 401: return { text: 'This API key is not valid any more (revoked?). Sign in again.', retry: false };
    case 403: return { text: 'This API key’s scopes do not allow this.', retry: false };
    case 404: return { text: 'Not found: it may have been removed by retention, or the id is wrong.', retry: false };
    case 422: {
      const errs = (err.problem.errors || []).map((e) => e.field + ': ' + e.message).join('; ');
      return { text: 'The relay refused the request: ' + (errs || err.message), retry: false };
    }
    default: return { text: 'The relay answered ' + err.status + ': ' + err.message, retry: false };
  }
}

export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}
