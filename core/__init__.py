"""Heron's domain: extraction, classifiers, training, evaluation, storage and use cases."""

from core import astguard

if astguard.AFFECTED:  # CPython 3.11 before 3.11.8: see core/astguard.py
    astguard.install()
