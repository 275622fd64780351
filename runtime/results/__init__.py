"""results.json: assembled from a finished run and written atomically."""
