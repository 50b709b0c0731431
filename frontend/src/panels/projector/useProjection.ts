// The life of one server-side projection: POST /api/projector/project (answers at once:
// cached "done", or "queued"/"running" with a key), then progress from the SSE stream
// ("projection" events) with a slow poll as a fallback; partial t-SNE layouts are fetched
// while it runs (`coords?partial=1`), the final coordinates when it is done. Cancel asks the
// server's worker to stop.

import { useEffect, useRef, useState } from 'preact/hooks';
import { subscribeEvent } from '../../sse';
import { fetchCoords, projectorApi, type Coords, type ProjectRequest, type ProjectionState } from './api';
import { mark } from './hook';

const POLL_MS = 1500;

export interface ProjectionView {
  coords: Coords | null;
  /** the key of the shown coordinates' projection */
  coordsKey: string | null;
  key: string | null;
  state: ProjectionState | 'idle';
  progress: number;
  /** the shown coordinates are a partial layout */
  partial: boolean;
  error: string | null;
  cancel: () => void;
}

interface ProjectionEvent {
  run?: string;
  key?: string;
  state?: ProjectionState;
  progress?: number;
  partial?: boolean;
  message?: string;
}

export function useProjection(req: ProjectRequest | null, id: string): ProjectionView {
  const [coords, setCoords] = useState<{ coords: Coords; key: string; partial: boolean } | null>(null);
  const [key, setKey] = useState<string | null>(null);
  const [state, setState] = useState<ProjectionState | 'idle'>('idle');
  const [progress, setProgress] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const cancelRef = useRef<() => void>(() => {});
  const reqKey = req === null ? '' : JSON.stringify(req);
  const dataKey = req === null ? '' : JSON.stringify([req.run, req.tag, req.step]);
  const shownData = useRef(dataKey);

  useEffect(() => {
    if (req === null) return;
    if (shownData.current !== dataKey) {
      // other points: the old layout would pair them with the wrong coordinates
      shownData.current = dataKey;
      setCoords(null);
    }
    const ctl = new AbortController();
    let alive = true;
    let current: string | null = null;
    let finished = false;
    let fetching = false;
    let unsubscribe = () => {};
    let timer = 0;
    setError(null);
    setProgress(0);
    setState('queued');

    const stop = () => {
      finished = true;
      window.clearInterval(timer);
      unsubscribe();
    };
    const load = (partial: boolean) => {
      if (current === null || (fetching && partial)) return;
      const k = current;
      fetching = true;
      fetchCoords(req.run, k, partial, ctl.signal)
        .then((c) => {
          if (!alive || c === null) return;
          if (!partial) mark(`${id}:coords`);
          setCoords((old) => (partial && old !== null && old.key === k && !old.partial && finished ? old : { coords: c, key: k, partial }));
        })
        .catch((e: unknown) => alive && setError(String(e)))
        .finally(() => {
          fetching = false;
        });
    };
    const onState = (s: ProjectionState, p: number, partialReady: boolean, message?: string) => {
      if (!alive || finished) return;
      setState(s);
      setProgress(p);
      if (s === 'done') {
        stop();
        load(false);
      } else if (s === 'error' || s === 'cancelled') {
        stop();
        if (s === 'error') setError(message ?? 'the projection failed on the server');
      } else if (partialReady) {
        load(true);
      }
    };

    mark(`${id}:request`);
    projectorApi
      .project(req, ctl.signal)
      .then((ans) => {
        if (!alive) return;
        current = ans.key;
        setKey(ans.key);
        cancelRef.current = () => {
          void projectorApi.cancel(req.run, ans.key).catch(() => undefined);
          stop();
          setState('cancelled');
        };
        if (ans.state !== 'done') {
          unsubscribe = subscribeEvent(req.run, 'projection', (raw) => {
            const ev = raw as ProjectionEvent;
            if (ev.key !== current || ev.state === undefined) return;
            onState(ev.state, ev.progress ?? 0, ev.partial === true, ev.message);
          });
          timer = window.setInterval(() => {
            projectorApi
              .project(req, ctl.signal)
              .then((a) => onState(a.state, a.progress, a.state === 'running', a.message))
              .catch(() => undefined);
          }, POLL_MS);
        }
        onState(ans.state, ans.progress, false, ans.message);
      })
      .catch((e: unknown) => {
        if (!alive) return;
        setState('error');
        setError(e instanceof Error ? e.message : String(e));
      });
    return () => {
      alive = false;
      ctl.abort();
      stop();
      cancelRef.current = () => {};
    };
  }, [reqKey]);

  return {
    coords: coords?.coords ?? null,
    coordsKey: coords?.key ?? null,
    key,
    state,
    progress,
    partial: coords?.partial ?? false,
    error,
    cancel: () => cancelRef.current(),
  };
}
