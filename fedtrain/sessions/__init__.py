"""A hospital's session inside its process: its own data, trainer and aggregator (horizontal and
vertical), opened before the strategy runs."""
