"""Scores for generated samples: Inception-style score, FID, KID, class histograms, Stacked MNIST.

The feature network for MNIST-like data is jaxgan's own classifier (classifier.py). This package
only reads trained networks; the classifier is trained by jaxgan/classifier_training.py.
"""
from jaxgan.metrics.classifier import classify
from jaxgan.metrics.classifier import ClassifierCNN
from jaxgan.metrics.classifier import load_classifier
from jaxgan.metrics.classifier import params_sha256
from jaxgan.metrics.inception import InceptionV3
from jaxgan.metrics.inception import load_inception
from jaxgan.metrics.scores import class_histogram_stats
from jaxgan.metrics.scores import feature_stats
from jaxgan.metrics.scores import frechet_distance
from jaxgan.metrics.scores import inception_score
from jaxgan.metrics.scores import kid
from jaxgan.metrics.scores import polynomial_kernel
from jaxgan.metrics.stacked_mnist import channel_predictions
from jaxgan.metrics.stacked_mnist import stacked_mnist_metric

__all__ = [
    'channel_predictions',
    'class_histogram_stats',
    'classify',
    'ClassifierCNN',
    'feature_stats',
    'frechet_distance',
    'inception_score',
    'InceptionV3',
    'kid',
    'load_classifier',
    'load_inception',
    'params_sha256',
    'polynomial_kernel',
    'stacked_mnist_metric',
]
