from mailbot.cli.main import main

if __name__ == "__main__":  # not when a helper process imports the main module (parse_ahead)
    main()
