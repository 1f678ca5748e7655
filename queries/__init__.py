"""SQL run against the lake's DuckDB views: views/, presets/ and macros/ as plain .sql files.

Each file is standalone DuckDB SQL over the table views (sessions, units, spikes, ...), so it can
be used from any DuckDB session that defines those views; `lake.views.load_query_files` runs
them all for every `Lake.sql` connection.
"""
