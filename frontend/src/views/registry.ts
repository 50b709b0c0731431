// One registry of panel components keyed by view kind (`deepscope.views.registry`): the
// server names a kind's panel in `/api/views` (`panel`), the frontend looks it up here.
// Adding a kind: register its Python `ViewKind`, regenerate `wire/types.ts`, add a row.

import type { ComponentType } from 'preact';
import { AttributionPanel } from '../panels/attribution/AttributionPanel';
import type { ViewKindName } from '../wire/types';

export interface ViewPanel {
  /** The tab label. */
  title: string;
  /** The component that draws the kind; it reads its items from `/api/views/<kind>`. */
  component: ComponentType;
}

export const VIEW_PANELS: Record<ViewKindName, ViewPanel> = {
  attribution: { title: 'Attribution', component: AttributionPanel },
};

/** The panel of a kind, or undefined for a kind this build does not know. */
export function viewPanel(kind: string): ViewPanel | undefined {
  return (VIEW_PANELS as Record<string, ViewPanel | undefined>)[kind];
}
