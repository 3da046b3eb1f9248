"""Local engine and operator CLI for tgrelay (never deployed)."""
