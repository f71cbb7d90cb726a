import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from '../../client/api-error.js';
import type { LiveEvent } from './live.js';
import { useSession } from './session-context.js';

export interface LiveData<T> {
  readonly data: T | undefined;
  readonly error: ApiError | undefined;
  /** Loads again now (after an action); coalesced with any load in flight. */
  readonly reload: () => Promise<void>;
}

/**
 * Loads once, then again whenever the event stream says something relevant happened (or a
 * connection opened, or the server said `reset`): level-triggered, like the controller. At most one
 * load in flight and one queued, however many events arrive.
 */
export function useLiveData<T>(load: () => Promise<T>, deps: readonly unknown[], relevant: (e: LiveEvent) => boolean = () => true): LiveData<T> {
  const { live } = useSession();
  const [state, setState] = useState<{ data?: T; error?: ApiError }>({});
  const reloadRef = useRef<() => Promise<void>>(async () => undefined);
  useEffect(() => {
    let cancelled = false;
    let running: Promise<void> | null = null;
    let again = false;
    const run = (): Promise<void> => {
      if (running) {
        again = true;
        return running;
      }
      running = (async () => {
        do {
          again = false;
          try {
            const data = await load();
            if (!cancelled) setState({ data });
          } catch (err) {
            const error = err instanceof ApiError ? err : new ApiError(0, 'client', String(err));
            if (!cancelled) setState((s) => ({ ...s, error }));
          }
        } while (again && !cancelled);
        running = null;
      })();
      return running;
    };
    setState({});
    void run();
    reloadRef.current = run;
    const off = live.subscribe((e) => {
      if (e.type === 'open' || e.type === 'reset' || relevant(e)) void run();
    });
    return () => {
      cancelled = true;
      off();
    };
  }, deps);
  return { ...state, data: state.data, error: state.error, reload: () => reloadRef.current() };
}

/** Re-renders every few seconds so that ages ("12s") stay true; no request is made. */
export function useNow(everyMs = 5_000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}
