"""Input and output under everything else: images, files and folders, checkpoints, errors."""
