"""What many tests need and used to write each their own way: running `python -m portfwd`
(cli.py), waiting on a condition (wait.py) and ports a test can rely on (ports.py)."""
