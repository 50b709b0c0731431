// The explore workbench as the notebook widget draws it: the dashboard's explore page (the
// live model's input strip above the graph, whose inspector carries the Weights,
// Activations, Gradients, Attribution and Attention tabs), the same components as
// `App.tsx` draws for the graph tab under `deepscope.explore`, with their API requests on
// the widget's comm channel (`comm.ts`).

import type { RunInfo } from '../api';
import { runColor } from '../colors';
import { DashboardContext, type Dashboard } from '../context';
import { GraphPanel } from '../panels/graph/GraphPanel';
import { InputStrip } from '../panels/workbench/InputStrip';
import { useWorkbenchInfo } from '../panels/workbench/WorkbenchInspector';

const NO_RUNS: RunInfo[] = [];

const DASHBOARD: Dashboard = {
  runs: NO_RUNS,
  selected: [],
  setSelected: () => {},
  colorOf: (run) => runColor(Math.max(0, run.length % 8)),
  versions: {},
  modelMode: true,
};

export function ExploreView() {
  const live = useWorkbenchInfo();
  return (
    <DashboardContext.Provider value={DASHBOARD}>
      <div class="deepscope-explore" data-testid="explore-widget">
        {live !== null && <InputStrip info={live} />}
        <section class="panel panel-graph" data-testid="panel-graph">
          <GraphPanel runs={[]} modelMode={true} />
        </section>
      </div>
    </DashboardContext.Provider>
  );
}
