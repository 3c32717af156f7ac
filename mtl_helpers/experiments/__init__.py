"""Notebook-specific studies, one module per notebook."""
