"""The ``staplecheck`` command: argument parsing and output (``_main``), the
``check`` command's connection (``_check``) and the offline ``demo`` (``_demo``).
"""
