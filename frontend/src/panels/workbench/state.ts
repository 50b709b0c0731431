// The workbench's shared selection: the input and the target class every open view uses.
// One small store (no context needed): the input strip writes it, every view reads it.

import { useEffect, useState } from 'preact/hooks';

export interface Selection {
  input: number;
  /** null: explain the predicted class. */
  target: number | null;
}

let current: Selection = { input: 0, target: null };
const listeners = new Set<(s: Selection) => void>();

export function getSelection(): Selection {
  return current;
}

export function setSelection(next: Partial<Selection>): void {
  const merged = { ...current, ...next };
  if (merged.input === current.input && merged.target === current.target) return;
  current = merged;
  for (const fn of listeners) fn(current);
}

export function useSelection(): Selection {
  const [sel, setSel] = useState<Selection>(current);
  useEffect(() => {
    listeners.add(setSel);
    setSel(current);
    return () => {
      listeners.delete(setSel);
    };
  }, []);
  return sel;
}
