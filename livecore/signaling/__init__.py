"""WHIP and WHEP HTTP resources. May import: sfu, auth, errors."""
