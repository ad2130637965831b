"""The compute layer: scanning, decoding, embedding, projection, clustering, caching, results.

Nothing here imports Panel, HoloViews or Bokeh; torch, timm, umap and hdbscan are imported
lazily inside the functions that need them.
"""
