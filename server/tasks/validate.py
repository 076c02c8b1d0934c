"""`python -m python_env.server.tasks.validate`: the old name of the bank validator,
`python -m python_env.server.validate` (which sits above the bank and the grader; this
alias imports nothing, so the task bank keeps no arrow up to them)."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("python_env.server.validate", run_name="__main__", alter_sys=True)
