"""Result files: the layout of a slide's output folder, OME-Zarr label images, QuPath
GeoJSON, overlay images and the batch table. The only room that knows these formats."""
