"""The `wmhseg` command line: a thin edge over the engine that turns InputError into exit code 2."""
