from campwatch.cli.main import run

run()
