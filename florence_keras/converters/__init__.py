"""Checkpoint converters into florence_keras models."""
