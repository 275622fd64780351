"""The .circ compiler: parse, lower, check, format, plan, diff. Never imports torch."""
