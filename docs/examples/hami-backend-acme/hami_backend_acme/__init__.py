"""hami backend for Acme accelerators: the complete minimal backend of docs/writing-a-backend.md."""
