"""The `circ` command line: one module per command, the only code that knows the compiler and the runtime together."""
