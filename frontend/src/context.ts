import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { RunInfo } from './api';

export interface Dashboard {
  runs: RunInfo[];
  selected: string[];
  setSelected: (runs: string[]) => void;
  colorOf: (run: string) => string;
  /** Store version per run, bumped by live updates; panels re-fetch when it changes. */
  versions: Record<string, number>;
  modelMode: boolean;
}

export const DashboardContext = createContext<Dashboard | null>(null);

export function useDashboard(): Dashboard {
  const d = useContext(DashboardContext);
  if (d === null) throw new Error('useDashboard outside <App>');
  return d;
}
