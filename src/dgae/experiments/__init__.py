"""Applications built on the library: studies and experiments that produce the README's numbers."""
