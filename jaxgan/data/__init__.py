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

# Image datasets (CIFAR-10, image folders, CelebA, MNIST at 64x64) and the 2-D mode benchmarks.
from jaxgan.data.cifar import find_cifar_dir
from jaxgan.data.cifar import load_cifar10
from jaxgan.data.images import list_images
from jaxgan.data.images import load_image_folder
from jaxgan.data.images import resize_images
from jaxgan.data.registry import Dataset
from jaxgan.data.registry import IMAGE_DATASETS
from jaxgan.data.registry import load_images
from jaxgan.data.toy import MIXTURES
from jaxgan.data.toy import mixture_means
from jaxgan.data.toy import mixture_std
from jaxgan.data.toy import mode_stats
from jaxgan.data.toy import sample_mixture
from jaxgan.data.toy import sample_mixture_jax
from jaxgan.data.toy import sample_mixture_np

__all__ += [
    'Dataset',
    'find_cifar_dir',
    'IMAGE_DATASETS',
    'list_images',
    'load_cifar10',
    'load_image_folder',
    'load_images',
    'MIXTURES',
    'mixture_means',
    'mixture_std',
    'mode_stats',
    'resize_images',
    'sample_mixture',
    'sample_mixture_jax',
    'sample_mixture_np',
]
