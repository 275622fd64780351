"""Checked IR to a networkx graph of operations, and that graph shown as text, JSON or dot."""
