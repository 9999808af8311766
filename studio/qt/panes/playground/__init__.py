"""The Playground's parts: the pane (one prompt, shared settings) and its answer columns."""
