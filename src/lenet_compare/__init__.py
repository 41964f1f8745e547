"""Library code shared by the workflow's steps (workflow/scripts/*.py).

Nothing here imports torch or tensorflow at module level: one process holds one framework.
"""
