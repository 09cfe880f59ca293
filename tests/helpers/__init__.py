"""Test helpers shared across test modules (fixture builders)."""
