"""Qt views of the studio. Views only: every capability lives in studio.core."""
