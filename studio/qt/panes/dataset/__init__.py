"""The Dataset workbench's parts: the rows table, findings, preview, stats, split & clean."""
