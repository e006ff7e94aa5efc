"""Datasets (MNIST-like IDX files) and a deterministic, resumable data order."""

from jaxgan.data.batching import batch_indices
from jaxgan.data.batching import epoch_permutation
from jaxgan.data.batching import EpochBatcher
from jaxgan.data.batching import steps_per_epoch
from jaxgan.data.idx import cache_dir
from jaxgan.data.idx import CHECKSUMS
from jaxgan.data.idx import clear_caches
from jaxgan.data.idx import ENV_VAR
from jaxgan.data.idx import find_dataset_dir
from jaxgan.data.idx import IMAGE_SHAPE
from jaxgan.data.idx import load_dataset
from jaxgan.data.idx import MIRRORS
from jaxgan.data.idx import NUM_CLASSES
from jaxgan.data.idx import to_float
from jaxgan.data.idx import verify_file

DATASETS = tuple(CHECKSUMS)

__all__ = [
    'batch_indices',
    'cache_dir',
    'CHECKSUMS',
    'clear_caches',
    'DATASETS',
    'ENV_VAR',
    'epoch_permutation',
    'EpochBatcher',
    'find_dataset_dir',
    'IMAGE_SHAPE',
    'load_dataset',
    'MIRRORS',
    'NUM_CLASSES',
    'steps_per_epoch',
    'to_float',
    'verify_file',
]
