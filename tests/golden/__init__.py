"""Golden values from the reference implementation, and the scripts that made them."""
