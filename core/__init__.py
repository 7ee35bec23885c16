"""Heron's domain: extraction, classifiers, training, evaluation, storage and use cases."""
