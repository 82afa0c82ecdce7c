"""Reading and writing files: atomic writes, GeoTIFF, vectors, checkpoints."""
