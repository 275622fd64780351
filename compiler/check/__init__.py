"""Syntax tree to checked IR: declarations, the lowering passes in the order they run, node sets, argument binding and signatures, model shapes."""
