"""WHIP and WHEP HTTP resources. May import: sfu, auth, leaf modules."""
