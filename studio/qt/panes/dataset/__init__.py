"""The Dataset room: the pane and its parts — the top bar, the rows table and row preview,
findings, stats, split & clean."""
