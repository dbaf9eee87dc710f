"""Figures (matplotlib, Agg backend): one module per kind of figure.

Every function takes arrays or result objects and a path, writes a PNG
atomically and returns the path; nothing here computes science.
"""
