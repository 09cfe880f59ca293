"""Secure computation between hospitals: key agreement, pairwise masks, CrypTen secret sharing."""
