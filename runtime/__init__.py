"""The runtime: models, datasets, the plan executor, analyses, rendering and reports."""
