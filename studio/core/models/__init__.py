"""Models: the local model store, GGUF import, and architecture introspection on the meta device."""
