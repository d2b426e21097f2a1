"""Tests of livecore's leaf modules (docs/architecture.md, layers 9 to 11): the settings and
their loader, the shipped configuration files, the client's address, the TTL cache, the
rules for text people write."""
