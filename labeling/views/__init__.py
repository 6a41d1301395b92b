"""Pages of the labeling app: ``reviewer`` for the review queue and workspace, ``manager`` for campaigns."""
