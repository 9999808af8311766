"""The four rooms of the studio: Dataset, Configure, Train, Library."""
