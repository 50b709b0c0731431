// Search by name or op (server side, /api/graph/search); picking a match reveals it.
import { useEffect, useState } from 'preact/hooks';
import { getJson } from '../../api';
import type { GraphSource, SearchMatch } from './types';

export interface SearchBoxProps {
  source: GraphSource;
  onPick: (m: SearchMatch) => void;
}

const LIMIT = 30;

export function SearchBox(p: SearchBoxProps) {
  const [q, setQ] = useState('');
  const [matches, setMatches] = useState<SearchMatch[]>([]);
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const text = q.trim();
    if (text === '') {
      setMatches([]);
      return;
    }
    const ctl = new AbortController();
    const t = window.setTimeout(() => {
      const { run, tag, model } = p.source;
      getJson<{ matches: SearchMatch[] }>(
        'graph/search',
        { run: model ? undefined : run, model: model ? 1 : undefined, tag: tag ?? undefined, q: text, limit: LIMIT },
        ctl.signal,
      )
        .then((r) => {
          setMatches(r.matches);
          setError(null);
          setOpen(true);
        })
        .catch((e: unknown) => {
          if (!ctl.signal.aborted) setError(String(e));
        });
    }, 150);
    return () => {
      window.clearTimeout(t);
      ctl.abort();
    };
  }, [q, p.source]);

  const pick = (m: SearchMatch) => {
    setOpen(false);
    p.onPick(m);
  };

  return (
    <div class="gx-search">
      <input
        type="search"
        placeholder="Search name or op"
        data-testid="graph-search"
        value={q}
        onInput={(e) => setQ((e.target as HTMLInputElement).value)}
        onFocus={() => setOpen(true)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && matches.length > 0) pick(matches[0]);
          if (e.key === 'Escape') setOpen(false);
        }}
      />
      {error !== null && <span class="gx-error">{error}</span>}
      {open && q.trim() !== '' && (
        <ul class="gx-results" data-testid="graph-search-results">
          {matches.length === 0 && <li class="gx-muted">no match</li>}
          {matches.map((m) => (
            <li key={m.id}>
              <button type="button" data-testid="graph-search-result" data-node-id={m.id} onClick={() => pick(m)}>
                <span class="gx-res-label">{m.label || m.id}</span>
                <span class="gx-res-op">{m.op}</span>
                <span class="gx-res-ns">{m.namespace}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
