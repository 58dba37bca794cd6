"""hami backend for Cambricon MLUs."""
