"""The exit codes of the ``prp`` command line (every command, and ``prp.cli.main``)."""

EXIT_OK = 0  # done
EXIT_BAD_INPUT = 2  # bad input: a file, a flag or a value (one line on stderr naming it)
EXIT_BACKEND = 3  # the judge failed (down, or answering errors)
EXIT_BUDGET = 4  # prp rerank --max-inferences ran out: the output is written, some queries were cut
EXIT_UNPARSED = 5  # too many unparsed answers (prp rerank --max-unparsed)
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM
