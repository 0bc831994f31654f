"""Builders, constants and helpers the tests share (not fixtures: those live in the
``conftest.py`` of the folder that needs them). Import as ``from tests.support.x import ...``."""
