"""Synthetic training data: prompts, the OpenAI-compatible client, reply parsing and quality gates.

Pure logic (no database): ``core.services.synthesis`` runs it as a background task and stores
what passes.
"""
