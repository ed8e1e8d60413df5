"""leadtime: autoscale GPU model-serving replicas ahead of demand."""

__version__ = "0.1.0"
