"""Root fixtures: database back ends (tests/fakes/db.py) and every Mailbox implementation arranged
alike (tests/fakes/arrangements.py) are available to every test."""

pytest_plugins = ["tests.fakes.db", "tests.fakes.arrangements", "tests.fakes.notify_arrangements"]
