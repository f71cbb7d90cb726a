import type { Context, TypedResponse } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { JSONParsed } from 'hono/utils/types';

/** JSON text, typed with the value it was serialized from. */
export type JsonText<T> = string & { readonly __jsonOf: T };

/**
 * A view serialized at most once per object it is given. Reads answered from one loaded object —
 * the concurrent requests a Coalescer joined, a status object kept by the StatusCache — then share
 * one JSON text instead of each building and stringifying its own copy. Sound because loaded
 * objects are never mutated: a change is a new object from a new read.
 */
export function jsonViewOnce<S extends object, T>(view: (source: S) => T): (source: S) => JsonText<T> {
  const texts = new WeakMap<S, JsonText<T>>();
  return (source) => {
    let text = texts.get(source);
    if (text === undefined) {
      text = JSON.stringify(view(source)) as JsonText<T>;
      texts.set(source, text);
    }
    return text;
  };
}

/** Answers with JSON text exactly as `c.json` answers with the value it was made from. */
export function jsonTextResponse<T, U extends ContentfulStatusCode>(
  c: Context,
  text: JsonText<T>,
  status: U,
  headers: Record<string, string> = {},
): Response & TypedResponse<JSONParsed<T>, U, 'json'> {
  return c.newResponse(text, status, { ...headers, 'Content-Type': 'application/json' }) as Response & TypedResponse<JSONParsed<T>, U, 'json'>;
}
