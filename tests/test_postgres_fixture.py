"""The PostgreSQL fixture gives a real server that SQLAlchemy reaches."""

import sqlalchemy


def test_postgres_server_answers(postgres):
    engine = sqlalchemy.create_engine(postgres.url())
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1 + 1")).scalar() == 2
    engine.dispose()
