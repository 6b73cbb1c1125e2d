"""Per-model derivations of the convergence terms, as checkable steps."""
