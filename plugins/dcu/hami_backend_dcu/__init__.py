"""hami backend for Hygon DCUs."""
