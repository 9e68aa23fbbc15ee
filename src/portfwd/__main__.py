from portfwd.cli.quick import main

if __name__ == "__main__":
    main()
