"""The Library's parts: the pane, the adapters table, lineage details, export and its result, the trash."""
