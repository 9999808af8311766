"""The Train room: the pane that starts and watches a run, its layout, and the Runs view that compares and resumes runs."""
