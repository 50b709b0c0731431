// One workbench view, fetched whenever its query changes: the previous request is aborted
// (the server drops a queued job every client left and stops a running one at its next
// checkpoint), progress is polled while it runs, and a
// view that raised comes back as its error text.

import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../../api';
import type { WorkbenchJob, WorkbenchView } from '../../wire/types';
import { fetchJobs, fetchView, type ViewQuery } from './api';

const POLL_MS = 400;

export interface ViewState {
  view: WorkbenchView | null;
  error: string | null;
  /** The job while it is queued or running (from `/api/workbench/jobs`). */
  job: WorkbenchJob | null;
}

/** The server's key of a query (`view|node|input|target`). */
export function viewKey(q: ViewQuery): string {
  const node = q.node ?? '';
  const input = q.view === 'units' ? 0 : q.input;
  const target = q.target === null || q.target === undefined ? 'pred' : String(q.target);
  return `${q.view}|${node}|${input}|${target}`;
}

export function useView(q: ViewQuery | null): ViewState {
  const [state, setState] = useState<ViewState>({ view: null, error: null, job: null });
  const key = q === null ? '' : viewKey(q);
  useEffect(() => {
    setState({ view: null, error: null, job: null });
    if (q === null) return;
    const ctl = new AbortController();
    let timer = 0;
    const poll = () => {
      fetchJobs(ctl.signal)
        .then((r) => {
          if (ctl.signal.aborted) return;
          const job = r.jobs.find((j) => j.key === key) ?? null;
          setState((s) => (s.view === null && s.error === null ? { ...s, job } : s));
          timer = window.setTimeout(poll, POLL_MS);
        })
        .catch(() => undefined);
    };
    timer = window.setTimeout(poll, POLL_MS);
    fetchView(q, ctl.signal)
      .then((view) => !ctl.signal.aborted && setState({ view, error: null, job: null }))
      .catch((e: unknown) => {
        if (ctl.signal.aborted) return;
        setState({ view: null, error: e instanceof ApiError ? e.message : String(e), job: null });
      })
      .finally(() => window.clearTimeout(timer));
    return () => {
      ctl.abort();
      window.clearTimeout(timer);
    };
  }, [key]);
  return state;
}

/** "computing…" with the job's state, progress and seconds; or the view's error. */
export function Pending({ state, what }: { state: ViewState; what: string }) {
  if (state.error !== null) {
    return (
      <div class="error wb-error" data-testid="wb-error">
        {state.error}
      </div>
    );
  }
  const j = state.job;
  let text = `computing ${what}…`;
  if (j !== null) {
    const pct = j.progress !== null ? ` ${Math.round(j.progress * 100)}%` : '';
    const where = j.state === 'queued' ? `queued${j.position ? ` (${j.position} ahead)` : ''}` : j.note || 'running';
    text = `${what}: ${where}${pct} · ${j.seconds.toFixed(1)} s`;
  }
  return (
    <div class="muted wb-pending" data-testid="wb-pending">
      {text}
    </div>
  );
}
