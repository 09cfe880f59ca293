"""Privacy measurement and protection: membership-inference audit, hospital-level DP."""
