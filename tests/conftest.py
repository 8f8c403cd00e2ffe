"""Root fixtures: the database fixtures of tests/fakes/db.py are available to every test."""

pytest_plugins = ["tests.fakes.db"]
