"""Inference: mapping whole scenes and patch folders with a trained model.

Modules: ``engine`` (torch engine, the :class:`~slidemap.inference.engine.Engine` protocol),
``scene`` (a GeoTIFF scene as band stacks in stored units), ``sliding`` (windows and
blending), ``postprocess`` (morphology, minimum area, holes), ``vectorize`` (polygons and
their attributes), ``mapping`` (:func:`~slidemap.inference.mapping.predict_scene`),
``patches`` (Landslide4Sense ``.h5`` prediction), ``dask_tiles`` (windows on Dask) and
``onnx_export`` (ONNX export and the onnxruntime engine). See ``docs/mapping.md``.
"""
