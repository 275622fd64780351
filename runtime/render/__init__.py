"""What people look at: circuit diagrams, Graphviz, charts, the HTML report and the run summary."""
