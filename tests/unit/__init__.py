"""Unit tests of the pixelflow core (a package so that spawned workers can import tests.unit helpers by name)."""
