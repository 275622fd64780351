"""What a plan will cost before it runs: passes, FLOPs and memory for a model shape."""
