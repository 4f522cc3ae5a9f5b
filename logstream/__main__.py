"""`python -m logstream`: the same as the `logstream` command."""

from logstream.launch import main

main()
