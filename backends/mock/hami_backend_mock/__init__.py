"""hami reference backend."""
