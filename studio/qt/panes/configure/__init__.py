"""The Configure room: the pane (a binder to core.configure.ConfigureSession), the form it is built from and where its base model comes from."""
