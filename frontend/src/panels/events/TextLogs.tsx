// Text summaries (run.log_text) shown under the events table, always as plain text.
import { useEffect, useState } from 'preact/hooks';
import { api, type TextInfo } from '../../api';
import { useTagGroups } from '../../hooks';

export function TextLogs() {
  const { groups } = useTagGroups('text');
  if (groups.length === 0) return null;
  return (
    <div class="text-logs">
      <h3>Text</h3>
      {groups.map((g) =>
        g.runs.map((run) => <TextCard key={`${g.tag}\u0000${run}`} run={run} tag={g.tag} />),
      )}
    </div>
  );
}

function TextCard({ run, tag }: { run: string; tag: string }) {
  const [texts, setTexts] = useState<TextInfo[]>([]);
  useEffect(() => {
    const ctl = new AbortController();
    api
      .texts(run, tag, ctl.signal)
      .then((r) => setTexts(r.texts))
      .catch(() => setTexts([]));
    return () => ctl.abort();
  }, [run, tag]);
  return (
    <div class="card text-card" data-testid="text-card" data-tag={tag} data-run={run}>
      <div class="card-head">
        <span class="card-title">{tag}</span>
        <span class="muted">{run}</span>
      </div>
      {texts.map((t) => (
        <div class="text-entry" key={t.step}>
          <span class="num muted">step {t.step}</span>
          <pre class="text-body">{t.text}</pre>
        </div>
      ))}
    </div>
  );
}
