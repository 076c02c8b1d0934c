"""The python_env server: environment, transport, sandbox, tasks and grading."""
