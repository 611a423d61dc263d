from junto.cli.main import main

main()
