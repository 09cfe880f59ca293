"""What a hospital does to its own update before it is shared: checks, clipping and noise."""
