import { useState } from 'preact/hooks';
import { Problem } from '../components/problem.js';
import { ApiError } from '../../../client/api-error.js';

/** A one-field form that sends its value and shows the API's answer (an error, or nothing). */
export function ActionForm(props: {
  label: string;
  button: string;
  initial: string;
  type: 'number' | 'text';
  min?: number;
  max?: number;
  name: string;
  onSubmit: (value: string) => Promise<unknown>;
}) {
  const [value, setValue] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const shown = value ?? props.initial;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.onSubmit(shown.trim());
      setValue(null);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'client', String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="action-form" onSubmit={(e) => void submit(e)}>
      <label>
        <span>{props.label}</span>
        {props.type === 'number' ? (
          <input name={props.name} type="number" min={props.min} max={props.max} required value={shown} onInput={(e) => setValue(e.currentTarget.value)} />
        ) : (
          <input name={props.name} type="text" required value={shown} onInput={(e) => setValue(e.currentTarget.value)} spellcheck={false} autocomplete="off" />
        )}
      </label>
      <button type="submit" class="primary" disabled={busy}>
        {props.button}
      </button>
      <Problem error={error} />
    </form>
  );
}
