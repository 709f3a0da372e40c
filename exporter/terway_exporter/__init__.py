"""terway-exporter: Prometheus metrics for the Terway CNI on Alibaba Cloud."""

__version__ = "0.1.0"
