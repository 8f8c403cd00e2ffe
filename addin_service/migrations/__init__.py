"""Alembic migrations, shipped inside the package and configured in code.

Run them with ``addin-service db upgrade`` or :meth:`addin_service.db.Database.upgrade`; there is
no ``alembic.ini``. To write a new revision, add ``versions/NNNN_what.py`` by hand (next number,
``down_revision`` the previous one) and keep ``addin_service/db/models.py`` in step:
``tests/integration/test_db_migrations.py`` fails when models and migrations disagree.
"""
