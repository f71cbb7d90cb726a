/**
 * The token: pasted once or brought by the `#token=` link that `steady dev` prints, kept in
 * sessionStorage (gone with the tab, never sent anywhere but this origin's API).
 */

const KEY = 'steady.token';

export interface Claims {
  readonly sub?: string;
  readonly roles?: readonly string[];
  readonly exp?: number;
}

/** Takes `#token=<JWT>` out of the address bar (history.replaceState) and keeps it. */
export function takeTokenFromLocation(): void {
  const match = /^#token=([^&]+)/.exec(location.hash);
  if (!match) return;
  storeToken(decodeURIComponent(match[1]!));
  history.replaceState(null, '', `${location.pathname}${location.search}#/`);
}

export const storedToken = (): string | null => sessionStorage.getItem(KEY);
export const storeToken = (token: string): void => sessionStorage.setItem(KEY, token.trim());
export const forgetToken = (): void => sessionStorage.removeItem(KEY);

/** A JWT's claims, unverified: only to choose what to show (the server decides what is allowed). */
export function claimsOf(token: string): Claims | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as unknown;
    return typeof claims === 'object' && claims !== null ? (claims as Claims) : null;
  } catch {
    return null;
  }
}

/** Three dot-separated base64url parts: anything else is not worth sending. */
export const looksLikeJwt = (token: string): boolean => /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token.trim());
