"""Training inside one hospital: the local trainer and its optional DP-SGD."""
