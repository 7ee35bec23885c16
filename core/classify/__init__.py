"""Classifiers: pure estimators that take texts and return scores."""
