"""What the CLI shows: cluster state read from the API, rendered as rich tables."""
