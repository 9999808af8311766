"""The Configure pane's parts: the form it is built from and where its base model comes from."""
