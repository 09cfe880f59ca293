"""crypten-fl command line: thin Typer commands over the library, rendered with rich."""
