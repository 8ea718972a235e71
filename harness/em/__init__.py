"""The EM method of arXiv 2502.00691: the E-step's value estimates and reference strategy, and the M-step's terms."""
