"""Annotations of every Kinetics release: releases, parsing, labels, selection."""
