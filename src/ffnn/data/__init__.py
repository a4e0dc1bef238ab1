"""Datasets: the IDX reader, the dataset registry and verified downloads."""

from .datasets import DATASETS, Dataset, Deferred, Scaling, load
from .idx import read_idx, write_idx

__all__ = ["DATASETS", "Dataset", "Deferred", "Scaling", "load", "read_idx", "write_idx"]
