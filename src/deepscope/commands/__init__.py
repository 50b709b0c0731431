"""One module per `deepscope` subcommand."""
