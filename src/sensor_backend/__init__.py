"""sensor-backend: a resilient microservice backend for testing sensors."""

__version__ = "0.1.0"
