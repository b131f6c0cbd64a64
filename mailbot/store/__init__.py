"""Where things are kept: the database (`db`, `models`, `migrations`, `statements`, `schema.sql`)
and the files under MAILBOT_DATA_DIR (`files`)."""
