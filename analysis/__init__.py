"""Analysis on top of models and solvers: comparisons, plots, the command line."""
