"""Analyses: one subpackage per question (attribution, activations, weights, attention, ...).

Subpackages load on first use; importing `deepscope.analysis` imports no torch.
"""
