"""The Playground's parts: the pane (one prompt, shared settings), the base and adapter choice, its
answer columns and the prompt set's results table."""
