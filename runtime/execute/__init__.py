"""Running a plan: the executor, one analysis at a time, the resume store, the Ray executor, circuits, rules and expectations."""
