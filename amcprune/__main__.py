from amcprune.cli.main import entry

entry()
