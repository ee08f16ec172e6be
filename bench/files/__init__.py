"""Files written safely: atomic writes and exclusive locks."""
