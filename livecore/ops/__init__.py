"""Operations: Prometheus metrics, health and readiness, the request log."""
