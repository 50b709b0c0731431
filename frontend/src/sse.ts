// Live updates: one EventSource on /api/stream; "update" events carry {"run", "version"}.
import { apiUrl } from './api';

export interface RunUpdate {
  run: string;
  version: number;
}

/** Subscribe to store updates of `runs`; returns an unsubscribe function. */
export function subscribe(runs: string[], onUpdate: (u: RunUpdate) => void): () => void {
  if (typeof EventSource === 'undefined' || runs.length === 0) return () => {};
  const source = new EventSource(apiUrl('stream', { run: runs }), { withCredentials: true });
  const listener = (ev: MessageEvent<string>) => {
    try {
      const data = JSON.parse(ev.data) as Partial<RunUpdate>;
      if (typeof data.run === 'string' && typeof data.version === 'number') {
        onUpdate({ run: data.run, version: data.version });
      }
    } catch {
      // A malformed frame is ignored; the next update carries the newest version anyway.
    }
  };
  source.addEventListener('update', listener as EventListener);
  return () => {
    source.removeEventListener('update', listener as EventListener);
    source.close();
  };
}

/** Listen to one named event (e.g. "projection") on the stream of `run`; each frame's JSON
 * data goes to `onData`. Returns an unsubscribe function. */
export function subscribeEvent(run: string, name: string, onData: (data: unknown) => void): () => void {
  if (typeof EventSource === 'undefined') return () => {};
  const source = new EventSource(apiUrl('stream', { run: [run] }), { withCredentials: true });
  const listener = (ev: MessageEvent<string>) => {
    try {
      onData(JSON.parse(ev.data));
    } catch {
      // a malformed frame is ignored
    }
  };
  source.addEventListener(name, listener as EventListener);
  return () => {
    source.removeEventListener(name, listener as EventListener);
    source.close();
  };
}
