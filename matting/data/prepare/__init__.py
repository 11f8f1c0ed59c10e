"""Preparing downloaded datasets: checking their layouts, writing manifests, COCO masks."""
