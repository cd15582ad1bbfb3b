"""The demo and the benchmarks' data: a synthetic book (demo.book), the demo's staff users, its reset, and the
commands that load them (demo_setup, generate_book, demo_users, demo_workflow_clear).

It sits above every domain app (core < accounts < rules < restructuring < demo): it may use them all, to set up a
book, users and, later, cases or rules; none of them imports it (an import-linter contract in pyproject.toml).
No domain code path reaches it; demo_setup, demo_users and demo_workflow_clear refuse to run without DEBUG.
"""
