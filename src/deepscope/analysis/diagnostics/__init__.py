"""Diagnosis rules over watched statistics: each turns numbers into events that say what
is wrong, where, and what to try."""

from deepscope.analysis.diagnostics.rules import Diagnoser, Diagnosis, StepStats

__all__ = ["Diagnoser", "Diagnosis", "StepStats"]
