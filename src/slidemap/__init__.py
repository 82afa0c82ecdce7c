"""slidemap: landslide mapping from satellite imagery with deep segmentation networks."""

__version__ = "0.1.0"
