// PLACEHOLDER: helper-7 replaces this file with the real graph panel.
// Contract: App renders <GraphPanel runs={selected} modelMode={health.mode === 'model'} />
// inside <section data-testid="panel-graph">, so this component must not set that test id.
export interface GraphPanelProps {
  runs: string[];
  modelMode: boolean;
}

export function GraphPanel(props: GraphPanelProps) {
  return (
    <div class="empty">
      Graph view ({props.modelMode ? 'served model' : `${props.runs.length} run(s) selected`}) is
      not built yet.
    </div>
  );
}
