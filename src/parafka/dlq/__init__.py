"""Dead-letter tools that act on topics: selecting records again (redrive) and replaying
them."""
