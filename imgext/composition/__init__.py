"""Composition: chosen sounds become tracks (fetched, fitted, levelled), arranged in time and space."""
