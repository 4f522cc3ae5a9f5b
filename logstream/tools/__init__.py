"""Measuring tools: ``logstream bench`` and ``logstream compare`` and their helpers.

They start servers in child processes, drive lean clients and report numbers.
They may import every other layer; nothing but the CLI imports them, and
``logstream serve`` never loads them (their extra dependencies — psutil,
tqdm, httpx-sse — are optional).
"""
