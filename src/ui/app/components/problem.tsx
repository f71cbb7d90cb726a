import type { ApiError } from '../../../client/api-error.js';

/** An API error as the API said it, with the fields it named. */
export function Problem({ error }: { error: ApiError | undefined | null }) {
  if (!error) return null;
  return (
    <div class="problem" role="alert">
      <strong>{error.status ? `${error.status} ` : ''}</strong>
      {error.message}
      {error.details.length > 0 && (
        <ul>
          {error.details.map((d) => (
            <li key={d.path}>
              <code>{d.path || '(body)'}</code>: {d.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
