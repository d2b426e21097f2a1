"""End-to-end flows through many packages at once: going live (WHIP in, LL-HLS, thumbnail and
recording out) and who may play what (live and VOD, public and subscriber-only)."""
